/// The scheduling decisions of one file fetch across peers and chunks, with no I/O and an injected clock (`now`, in
/// seconds on any monotonic clock): which chunks are still needed, which peer holds which chunk and since when, and
/// when a chunk another peer holds has waited long enough to be taken over (the end game, so a fetch never sits at
/// 99 % behind one slow peer).
///
/// Events: `take` (a peer can carry more requests), `delivered` (a chunk arrived and was verified), `release` (a
/// peer failed, left, or claimed chunks it lacks). Actions: the chunk indices `take` returns (request them from that
/// peer), `nextTakeover` (arm a timer: at that instant `take` may give this peer a stalled chunk), and `isComplete`.
struct FetchSchedule: Sendable {
    /// Chunks nobody is fetching.
    private(set) var needed: Set<Int>
    /// Chunks a peer is fetching, and when it was given them.
    private(set) var assigned: [Int: (peer: String, at: Double)] = [:]
    /// Chunks in the output, verified.
    private(set) var done: Set<Int>
    /// A peer that has held a chunk this long (half the stall timeout) loses it to an idle peer that asks.
    let takeoverSeconds: Double

    /// A file of `chunkCount` chunks, of which `alreadyHeld` are in the output already.
    init(chunkCount: Int, alreadyHeld: Set<Int>, stallSeconds: Double) {
        done = alreadyHeld
        needed = Set(0..<chunkCount).subtracting(alreadyHeld)
        takeoverSeconds = stallSeconds / 2
    }

    var isComplete: Bool { needed.isEmpty && assigned.isEmpty }

    /// Up to `count` chunk indices for `peer` to request, lowest first, only ones it has. When nothing is
    /// unassigned, chunks another peer has held for `takeoverSeconds` or more move to this one.
    mutating func take(peer: String, count: Int, now: Double, has: (Int) -> Bool) -> [Int] {
        var out: [Int] = []
        for i in needed.sorted() where out.count < count && has(i) {
            out.append(i)
        }
        for i in out {
            needed.remove(i)
            assigned[i] = (peer, now)
        }
        if out.isEmpty {
            for (i, a) in assigned.sorted(by: { $0.key < $1.key }) where out.count < count {
                if a.peer != peer, now - a.at >= takeoverSeconds, has(i) {
                    assigned[i] = (peer, now)
                    out.append(i)
                }
            }
        }
        return out
    }

    /// When `take` could next give `peer` a chunk another peer holds (nil: no such chunk now; only an event can
    /// give it work).
    func nextTakeover(for peer: String, has: (Int) -> Bool) -> Double? {
        assigned.filter { $0.value.peer != peer && has($0.key) }.map { $0.value.at + takeoverSeconds }.min()
    }

    /// Chunk `i` arrived from `peer`, verified. True if it was the first delivery of it (a taken-over chunk can
    /// arrive twice).
    mutating func delivered(_ i: Int, peer: String) -> Bool {
        guard !done.contains(i) else { return false }
        done.insert(i)
        assigned[i] = nil
        needed.remove(i)
        return true
    }

    /// `peer` is gone or no longer trusted for this fetch: the chunks it held go back to the queue.
    mutating func release(peer: String) {
        for (i, a) in assigned where a.peer == peer && !done.contains(i) {
            assigned[i] = nil
            needed.insert(i)
        }
    }
}
