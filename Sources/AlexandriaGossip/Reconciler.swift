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
/// it sends the items the other lacks and asks (WANT) for the ids it lacks, and answers `skip`; except that when only
/// the other side lacks something, it answers with its own ids so the other side pulls them. The exchange ends when a
/// message is all `skip`. Rounds are logarithmic in the set size; bytes are proportional to the difference.
/// Fingerprints come from an `ItemIndex`: O(log n) per range, no id hashed.
public enum Reconciler {
    /// Sub-ranges a mismatched range is split into.
    public static let branching = 16
    /// At or below this many ids a node sends the ids themselves rather than splitting.
    public static let idListThreshold = 32
    /// Answering an id list, a node that lacks none of those ids but holds more than this many the other lacks
    /// answers with its own ids instead of the items, so the other side pulls them (WANT). Zero: a node back from
    /// offline reconciles with every peer at once, and any item a peer sent unasked would come once per peer (the
    /// simulator measured 3.6× the bytes lacked with 32).
    public static let pullThreshold = 0
    /// Ids in one `announce` message.
    public static let maxAnnounced = (GossipLimits.maxRanges - 1) / 2

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

    /// `SHA-256("alexandria/reconcile/v2" || count u64 || sum)[0..<16]`, where `sum` is the ids read as 256-bit
    /// big-endian unsigned integers added modulo 2²⁵⁶, written as 32 bytes big-endian. The sum is what makes a range's
    /// fingerprint cheap: `ItemIndex` keeps it per block, so no id is hashed again (version 1 hashed every id in the
    /// range, every round).
    public static func fingerprint(count: Int, sum: IDSum) -> [UInt8] {
        var h = SHA256()
        h.update(data: Array("alexandria/reconcile/v2".utf8))
        var n = UInt64(count).bigEndian
        withUnsafeBytes(of: &n) { h.update(bufferPointer: $0) }
        h.update(data: sum.bytes)
        return Array(h.finalize().prefix(16))
    }

    /// The fingerprint of a list of ids.
    public static func fingerprint<S: Collection>(_ ids: S) -> [UInt8] where S.Element == ContentHash {
        fingerprint(count: ids.count, sum: IDSum(ids))
    }

    static func fingerprint(_ index: ItemIndex, _ range: Swift.Range<Int>) -> [UInt8] {
        fingerprint(count: range.count, sum: index.sum(range))
    }

    /// What one step produced: the reply (nil when the exchange is over), the ids the other side lacks (send their
    /// items), and the ids this side lacks (ask for them).
    public struct Step: Equatable, Sendable {
        public var reply: [Range]?
        public var theyLack: [ContentHash]
        public var weLack: [ContentHash]
    }

    /// The opening message for a sorted id set.
    public static func open(_ sorted: [ContentHash]) -> [Range] { open(ItemIndex(sorted: sorted)) }

    /// The opening message for an indexed id set: O(1).
    public static func open(_ index: ItemIndex) -> [Range] {
        if index.count <= idListThreshold { return [Range(upper: .infinity, mode: .ids(index.all))] }
        return [
            Range(
                upper: .infinity,
                mode: .fingerprint(
                    count: UInt32(index.count), fingerprint: fingerprint(count: index.count, sum: index.sum)))
        ]
    }

    /// A message that says "I hold these ids" and nothing else: for each id X, the range [X, X+1) as an id list of X,
    /// and skip between them. A peer that lacks one asks for it (WANT); a peer that holds them all answers nothing.
    /// What a node sends to links it did not push new items to (a lazy push: one small frame, no item bytes).
    /// At most `maxAnnounced` ids fit one message (two ranges each, and the last skip); the rest are left out.
    public static func announce(_ ids: [ContentHash]) -> [Range] {
        var out: [Range] = []
        var previous: RangeBound?
        for id in Set(ids).sorted().prefix(maxAnnounced) {
            var bytes = id.bytes
            var i = 31
            while i >= 0 {
                bytes[i] &+= 1
                if bytes[i] != 0 { break }
                i -= 1
            }
            guard i >= 0, let next = ContentHash(bytes: bytes) else { continue }  // the last id of the space
            if previous != .id(id) { out.append(Range(upper: .id(id), mode: .skip)) }
            out.append(Range(upper: .id(next), mode: .ids([id])))
            previous = .id(next)
        }
        out.append(Range(upper: .infinity, mode: .skip))
        return out
    }

    /// Answers `message` from the side holding `sorted` (ascending, no duplicates).
    public static func step(_ sorted: [ContentHash], message: [Range]) throws(GossipError) -> Step {
        try step(ItemIndex(sorted: sorted), message: message)
    }

    /// Answers `message` from the side holding `index`. Throws for a message whose ranges do not cover the id space
    /// in increasing order or exceed the limits. Each range costs O(log n) plus the ids it sends or compares; a
    /// fingerprint is computed from the index's sums, never by hashing the range's ids.
    public static func step(_ index: ItemIndex, message: [Range]) throws(GossipError) -> Step {
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
            let upperIndex = max(lowerIndex, indexOf(range.upper, in: index))
            let count = upperIndex - lowerIndex
            switch range.mode {
            case .skip:
                out.append(Range(upper: range.upper, mode: .skip))
            case .fingerprint(let theirCount, let fp):
                if theirCount == count && fp == fingerprint(index, lowerIndex..<upperIndex) {
                    out.append(Range(upper: range.upper, mode: .skip))
                } else if count <= idListThreshold {
                    out.append(Range(upper: range.upper, mode: .ids(index.ids(lowerIndex..<upperIndex))))
                } else {
                    // Split at our own ids into `branching` parts of about equal count.
                    let per = (count + branching - 1) / branching
                    var start = lowerIndex
                    while start < upperIndex {
                        let end = min(start + per, upperIndex)
                        let bound: RangeBound = end == upperIndex ? range.upper : .id(index.id(at: end))
                        out.append(
                            Range(
                                upper: bound,
                                mode: .fingerprint(
                                    count: UInt32(end - start), fingerprint: fingerprint(index, start..<end))))
                        start = end
                    }
                }
            case .ids(let theirs):
                guard theirs.count <= GossipLimits.maxIDsPerRange else {
                    throw GossipError(.tooLarge, "an id list longer than \(GossipLimits.maxIDsPerRange)")
                }
                let mine = index.ids(lowerIndex..<upperIndex)
                let theirSet = Set(theirs)
                let mineSet = Set(mine)
                let lacking = theirs.filter { !mineSet.contains($0) }
                let extra = mine.filter { !theirSet.contains($0) }
                if lacking.isEmpty && extra.count > pullThreshold {
                    // They are behind here and we lack nothing of theirs: list our ids (in parts of at most
                    // `maxIDsPerRange`) so they ask for what they lack, of one peer, instead of every peer they
                    // reconcile with sending it all at once.
                    var start = 0
                    while start < mine.count {
                        let end = min(start + GossipLimits.maxIDsPerRange, mine.count)
                        let bound: RangeBound = end == mine.count ? range.upper : .id(mine[end])
                        out.append(Range(upper: bound, mode: .ids(Array(mine[start..<end]))))
                        start = end
                    }
                } else {
                    weLack += lacking
                    theyLack += extra
                    out.append(Range(upper: range.upper, mode: .skip))
                }
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
            let from = indexOf(keep.last!.upper, in: index)
            merged =
                keep + [
                    Range(
                        upper: .infinity,
                        mode: .fingerprint(
                            count: UInt32(index.count - from), fingerprint: fingerprint(index, from..<index.count)))
                ]
        }
        let done = merged.allSatisfy { $0.mode == .skip }
        return Step(reply: done ? nil : merged, theyLack: theyLack, weLack: weLack)
    }

    /// How many ids of `index` are below `bound`.
    static func indexOf(_ bound: RangeBound, in index: ItemIndex) -> Int {
        guard case .id(let b) = bound else { return index.count }
        return index.rank(b)
    }
}
