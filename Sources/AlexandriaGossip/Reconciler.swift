import AlexandriaCore
import Crypto

/// Range-based set reconciliation of two nodes' item ids (Protocol/gossip-v1.md, "Anti-entropy").
///
/// Ids are 32-byte SHA-256 values in lexicographic order. A message is a list of ranges that together cover the whole
/// id space in order; range i runs from the previous range's upper bound (the first from all zeros) up to, not
/// including, its own upper bound; the last range's bound is `RangeBound.infinity`. Each range carries one of:
/// - `skip`: nothing more to do here;
/// - `fingerprint`: the sender's count and fingerprint of its ids in the range;
/// - `ids`: every id the sender holds in the range (at most `GossipLimits.maxIDsPerRange`).
///
/// A node answers a fingerprint that matches its own with `skip`, one that does not with its own ids if it has few,
/// else with `branching` sub-ranges split at its own ids. It answers an id list by computing both differences at once:
/// it sends the items the other lacks and asks (WANT) for the ids it lacks, and answers `skip`. The exchange ends
/// when a message is all `skip`. Rounds are logarithmic in the set size; bytes are proportional to the difference.
public enum Reconciler {
    /// Sub-ranges a mismatched range is split into.
    public static let branching = 16
    /// At or below this many ids a node sends the ids themselves rather than splitting.
    public static let idListThreshold = 32

    public enum RangeBound: Hashable, Sendable, Comparable {
        case id(ContentHash)
        case infinity

        public static func < (a: RangeBound, b: RangeBound) -> Bool {
            switch (a, b) {
            case (.id(let x), .id(let y)): return x < y
            case (.id, .infinity): return true
            default: return false
            }
        }
    }

    public enum Mode: Equatable, Sendable {
        case skip
        case fingerprint(count: UInt32, fingerprint: [UInt8])
        case ids([ContentHash])
    }

    public struct Range: Equatable, Sendable {
        public var upper: RangeBound
        public var mode: Mode
        public init(upper: RangeBound, mode: Mode) {
            self.upper = upper
            self.mode = mode
        }
    }

    /// `SHA-256("alexandria/reconcile/v1" || count u64 || ids…)[0..<16]`.
    public static func fingerprint<S: Collection>(_ ids: S) -> [UInt8] where S.Element == ContentHash {
        var h = SHA256()
        h.update(data: Array("alexandria/reconcile/v1".utf8))
        var count = UInt64(ids.count).bigEndian
        withUnsafeBytes(of: &count) { h.update(bufferPointer: $0) }
        for id in ids { h.update(data: id.bytes) }
        return Array(h.finalize().prefix(16))
    }

    /// What one step produced: the reply (nil when the exchange is over), the ids the other side lacks (send their
    /// items), and the ids this side lacks (ask for them).
    public struct Step: Equatable, Sendable {
        public var reply: [Range]?
        public var theyLack: [ContentHash]
        public var weLack: [ContentHash]
    }

    /// The opening message for a sorted id set.
    public static func open(_ sorted: [ContentHash]) -> [Range] {
        if sorted.count <= idListThreshold { return [Range(upper: .infinity, mode: .ids(sorted))] }
        return [
            Range(upper: .infinity, mode: .fingerprint(count: UInt32(sorted.count), fingerprint: fingerprint(sorted)))
        ]
    }

    /// Answers `message` from the side holding `sorted` (ascending, no duplicates). Throws for a message whose
    /// ranges do not cover the id space in increasing order or exceed the limits.
    public static func step(_ sorted: [ContentHash], message: [Range]) throws(GossipError) -> Step {
        guard !message.isEmpty, message.count <= GossipLimits.maxRanges, message.last?.upper == .infinity else {
            throw GossipError(.malformed, "a RECONCILE message must cover the id space and end at infinity")
        }
        var out: [Range] = []
        var theyLack: [ContentHash] = []
        var weLack: [ContentHash] = []
        var lowerIndex = 0
        var previous: RangeBound?
        for range in message {
            if let previous, !(previous < range.upper) {
                throw GossipError(.malformed, "RECONCILE ranges are not in increasing order")
            }
            previous = range.upper
            let upperIndex = indexOf(range.upper, in: sorted, from: lowerIndex)
            let mine = sorted[lowerIndex..<upperIndex]
            switch range.mode {
            case .skip:
                out.append(Range(upper: range.upper, mode: .skip))
            case .fingerprint(let count, let fp):
                if count == mine.count && fp == fingerprint(mine) {
                    out.append(Range(upper: range.upper, mode: .skip))
                } else if mine.count <= idListThreshold {
                    out.append(Range(upper: range.upper, mode: .ids(Array(mine))))
                } else {
                    // Split at our own ids into `branching` parts of about equal count.
                    let per = (mine.count + branching - 1) / branching
                    var start = mine.startIndex
                    while start < mine.endIndex {
                        let end = min(start + per, mine.endIndex)
                        let bound: RangeBound = end == mine.endIndex ? range.upper : .id(sorted[end])
                        let part = sorted[start..<end]
                        out.append(
                            Range(
                                upper: bound,
                                mode: .fingerprint(count: UInt32(part.count), fingerprint: fingerprint(part))))
                        start = end
                    }
                }
            case .ids(let theirs):
                guard theirs.count <= GossipLimits.maxIDsPerRange else {
                    throw GossipError(.tooLarge, "an id list longer than \(GossipLimits.maxIDsPerRange)")
                }
                let theirSet = Set(theirs)
                let mineSet = Set(mine)
                for id in theirs where !mineSet.contains(id) { weLack.append(id) }
                for id in mine where !theirSet.contains(id) { theyLack.append(id) }
                out.append(Range(upper: range.upper, mode: .skip))
            }
            lowerIndex = upperIndex
        }
        // Merge neighbouring skips; an all-skip answer ends the exchange.
        var merged: [Range] = []
        for r in out {
            if r.mode == .skip, let last = merged.last, last.mode == .skip {
                merged[merged.count - 1].upper = r.upper
            } else {
                merged.append(r)
            }
        }
        if merged.count > GossipLimits.maxRanges {
            // Too many at once: keep the first part and fold the rest into one fingerprint for a later round.
            let keep = Array(merged.prefix(GossipLimits.maxRanges - 1))
            let from = indexOf(keep.last!.upper, in: sorted, from: 0)
            let restIDs = sorted[from...]
            merged =
                keep + [
                    Range(
                        upper: .infinity,
                        mode: .fingerprint(count: UInt32(restIDs.count), fingerprint: fingerprint(restIDs)))
                ]
        }
        let done = merged.allSatisfy { $0.mode == .skip }
        return Step(reply: done ? nil : merged, theyLack: theyLack, weLack: weLack)
    }

    /// The first index whose id is not below `bound`.
    static func indexOf(_ bound: RangeBound, in sorted: [ContentHash], from: Int) -> Int {
        guard case .id(let b) = bound else { return sorted.count }
        var lo = from
        var hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < b { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
