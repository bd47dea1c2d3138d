import AlexandriaCore

/// The sum of item ids read as 256-bit big-endian unsigned integers, modulo 2²⁵⁶: the part of a reconciliation
/// fingerprint that can be kept incrementally (add an id when it arrives, subtract it when it goes) and combined over
/// neighbouring ranges (Protocol/gossip-v1.md, "Anti-entropy").
public struct IDSum: Equatable, Sendable {
    /// Most significant word first.
    public private(set) var w0: UInt64 = 0
    public private(set) var w1: UInt64 = 0
    public private(set) var w2: UInt64 = 0
    public private(set) var w3: UInt64 = 0

    public static let zero = IDSum()
    public init() {}

    public init<S: Sequence>(_ ids: S) where S.Element == ContentHash {
        for id in ids { add(id) }
    }

    @inline(__always)
    static func adc(_ x: UInt64, _ y: UInt64, _ carry: UInt64) -> (UInt64, UInt64) {
        let (a, o1) = x.addingReportingOverflow(y)
        let (b, o2) = a.addingReportingOverflow(carry)
        return (b, (o1 ? 1 : 0) + (o2 ? 1 : 0))
    }

    @inline(__always)
    mutating func add(words y: (UInt64, UInt64, UInt64, UInt64)) {
        var c: UInt64 = 0
        (w3, c) = Self.adc(w3, y.3, 0)
        (w2, c) = Self.adc(w2, y.2, c)
        (w1, c) = Self.adc(w1, y.1, c)
        (w0, _) = Self.adc(w0, y.0, c)
    }

    public mutating func add(_ id: ContentHash) { add(words: id.words) }
    public mutating func add(_ other: IDSum) { add(words: (other.w0, other.w1, other.w2, other.w3)) }

    /// Subtracts modulo 2²⁵⁶ (adds the two's complement).
    public mutating func subtract(_ other: IDSum) {
        var negated = IDSum()
        negated.add(words: (~other.w0, ~other.w1, ~other.w2, ~other.w3))
        negated.add(words: (0, 0, 0, 1))
        add(negated)
    }

    public mutating func subtract(_ id: ContentHash) { subtract(IDSum([id])) }

    public static func - (a: IDSum, b: IDSum) -> IDSum {
        var out = a
        out.subtract(b)
        return out
    }

    /// The 32 bytes, big-endian.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }
}

/// A node's item ids in order, with the sums that let reconciliation fingerprint any range of them in O(log n + B)
/// instead of hashing every id in it (B = `blockSize`): the ids live in sorted blocks of at most 2·`blockSize`, each
/// with its count and `IDSum`, and the counts and sums before each block are kept as prefixes. An insert or removal
/// costs O(B) plus O(n / B) to refresh the prefixes after the lowest block touched (once per batch). A value type:
/// copies share their blocks until one is changed (the simulator's thousands of nodes share one base set).
public struct ItemIndex: Sendable {
    /// Ids per block after a split (a block holds at most twice this).
    public static let blockSize = 256

    struct Block: Sendable {
        var ids: [ContentHash]
        var sum: IDSum
    }

    var blocks: [Block] = []
    /// `starts[i]`: ids before block i; `sums[i]`: their sum. One more entry than `blocks` (the totals).
    var starts: [Int] = [0]
    var sums: [IDSum] = [.zero]

    public init() {}

    /// An index over `ids`; they are sorted and de-duplicated first unless already strictly ascending.
    public init(sorted ids: [ContentHash]) {
        var ids = ids
        if zip(ids, ids.dropFirst()).contains(where: { !($0 < $1) }) { ids = Array(Set(ids)).sorted() }
        var start = 0
        while start < ids.count {
            let end = min(start + Self.blockSize, ids.count)
            let part = Array(ids[start..<end])
            blocks.append(Block(ids: part, sum: IDSum(part)))
            start = end
        }
        refresh(from: 0)
    }

    public var count: Int { starts[blocks.count] }
    public var isEmpty: Bool { count == 0 }
    /// The sum of every id.
    public var sum: IDSum { sums[blocks.count] }

    /// Every id, ascending.
    public var all: [ContentHash] { blocks.flatMap(\.ids) }

    /// The block an id belongs in: the first whose last id is not below it (the last block when it is above all).
    func block(for id: ContentHash) -> Int {
        var lo = 0
        var hi = blocks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            // An empty block exists only for a moment, during the first insert.
            if let last = blocks[mid].ids.last, !(last < id) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    static func position(of id: ContentHash, in ids: [ContentHash]) -> Int {
        var lo = 0
        var hi = ids.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ids[mid] < id { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func contains(_ id: ContentHash) -> Bool {
        let b = block(for: id)
        guard b < blocks.count else { return false }
        let ids = blocks[b].ids
        let p = Self.position(of: id, in: ids)
        return p < ids.count && ids[p] == id
    }

    /// How many ids are below `id`.
    public func rank(_ id: ContentHash) -> Int {
        let b = block(for: id)
        guard b < blocks.count else { return count }
        return starts[b] + Self.position(of: id, in: blocks[b].ids)
    }

    /// The block holding position `p` (0 ≤ p < count).
    func block(at p: Int) -> Int {
        var lo = 0
        var hi = blocks.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= p { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// The id at position `p` (0 ≤ p < count).
    public func id(at p: Int) -> ContentHash {
        let b = block(at: p)
        return blocks[b].ids[p - starts[b]]
    }

    /// The ids at positions `range`.
    public func ids(_ range: Range<Int>) -> [ContentHash] {
        guard !range.isEmpty else { return [] }
        var out: [ContentHash] = []
        out.reserveCapacity(range.count)
        var b = block(at: range.lowerBound)
        var p = range.lowerBound
        while p < range.upperBound {
            let ids = blocks[b].ids
            let from = p - starts[b]
            let to = min(ids.count, range.upperBound - starts[b])
            out += ids[from..<to]
            p += to - from
            b += 1
        }
        return out
    }

    /// The sum of the ids before position `p` (0 ≤ p ≤ count).
    public func sum(before p: Int) -> IDSum {
        if p >= count { return sum }
        let b = block(at: p)
        let ids = blocks[b].ids
        let offset = p - starts[b]
        // From whichever end of the block is nearer.
        if offset <= ids.count / 2 {
            var s = sums[b]
            for id in ids[..<offset] { s.add(id) }
            return s
        }
        var tail = IDSum()
        for id in ids[offset...] { tail.add(id) }
        return sums[b + 1] - tail
    }

    /// The sum of the ids at positions `range`.
    public func sum(_ range: Range<Int>) -> IDSum {
        range.isEmpty ? .zero : sum(before: range.upperBound) - sum(before: range.lowerBound)
    }

    /// Adds ids (any order, duplicates and ids already held ignored). Returns how many were new.
    @discardableResult
    public mutating func insert<S: Sequence>(_ new: S) -> Int where S.Element == ContentHash {
        var lowest = Int.max
        var added = 0
        for id in new {
            if blocks.isEmpty { blocks.append(Block(ids: [], sum: .zero)) }
            let b = min(block(for: id), blocks.count - 1)
            let p = Self.position(of: id, in: blocks[b].ids)
            if p < blocks[b].ids.count && blocks[b].ids[p] == id { continue }
            blocks[b].ids.insert(id, at: p)
            blocks[b].sum.add(id)
            added += 1
            lowest = min(lowest, b)
            if blocks[b].ids.count > 2 * Self.blockSize {
                let upper = Array(blocks[b].ids[Self.blockSize...])
                let lower = Array(blocks[b].ids[..<Self.blockSize])
                blocks[b] = Block(ids: lower, sum: IDSum(lower))
                blocks.insert(Block(ids: upper, sum: IDSum(upper)), at: b + 1)
            }
        }
        if lowest != .max { refresh(from: lowest) }
        return added
    }

    /// Removes ids (those not held are ignored). Returns how many were removed.
    @discardableResult
    public mutating func remove<S: Sequence>(_ gone: S) -> Int where S.Element == ContentHash {
        var lowest = Int.max
        var removed = 0
        for id in gone {
            let b = block(for: id)
            guard b < blocks.count else { continue }
            let p = Self.position(of: id, in: blocks[b].ids)
            guard p < blocks[b].ids.count && blocks[b].ids[p] == id else { continue }
            blocks[b].ids.remove(at: p)
            blocks[b].sum.subtract(id)
            removed += 1
            lowest = min(lowest, b)
            if blocks[b].ids.isEmpty { blocks.remove(at: b) }
        }
        if lowest != .max { refresh(from: lowest) }
        return removed
    }

    /// Recomputes the prefixes from block `first` on.
    mutating func refresh(from first: Int) {
        let first = min(first, blocks.count)
        starts.removeSubrange((first + 1)...)
        sums.removeSubrange((first + 1)...)
        for b in first..<blocks.count {
            starts.append(starts[b] + blocks[b].ids.count)
            var s = sums[b]
            s.add(blocks[b].sum)
            sums.append(s)
        }
    }
}
