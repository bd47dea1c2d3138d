/// Content-defined chunking with a gear hash and normalised chunking (FastCDC, Xia et al. 2016/2020).
///
/// The rule, which Protocol/chunking-and-hashing.md states normatively: starting a new chunk at position 0 of the
/// remaining data, skip `minSize` bytes, then for each position `i` roll `h = (h << 1) &+ gear[data[i]]` (h starts
/// at 0 at `minSize`) and cut after byte `i` when `h & mask == 0`, with `maskSmall` while `i < averageSize` and
/// `maskLarge` after; cut at `maxSize` (or the end of the data) if no position matched.
///
/// The chunker is a pure function of the bytes: it keeps no state between chunks, so a caller can feed it a
/// sliding window of a stream. Skipping the first `minSize` bytes of each chunk is what makes it fast.
public struct Chunker: Sendable {
    public let parameters: ChunkerParameters

    public init(parameters: ChunkerParameters = .v1) { self.parameters = parameters }

    /// Where an undecided cut search stopped: the next position to test, and the gear hash of the bytes from
    /// `minSize` up to it. Only valid for the same chunk start (the same first `position` bytes).
    public struct ScanState: Sendable, Hashable {
        public let position: Int
        public let hash: UInt64

        @usableFromInline init(position: Int, hash: UInt64) {
            self.position = position
            self.hash = hash
        }
    }

    /// Returns the length of the next chunk at the start of `data`, or nil when `data` is shorter than
    /// `maxSize`, more data may follow (`isFinal == false`) and no cut point was found yet.
    ///
    /// With `isFinal == true` the answer is never nil (and 0 only for empty data).
    @inlinable
    public func nextChunkLength(_ data: UnsafeRawBufferPointer, isFinal: Bool) -> Int? {
        var state: ScanState?
        return nextChunkLength(data, isFinal: isFinal, resuming: &state)
    }

    /// `nextChunkLength(_:isFinal:)` for a caller that offers the same chunk start again with more bytes after a
    /// nil: `state` carries where the search stopped, so the bytes already searched are not searched again. Pass nil
    /// for a new chunk start; on a nil answer `state` is set (or left nil when the search had not begun), and on an
    /// answer it is cleared. The cut points are exactly those of a search from the start.
    @inlinable
    public func nextChunkLength(_ data: UnsafeRawBufferPointer, isFinal: Bool, resuming state: inout ScanState?) -> Int?
    {
        let n = data.count
        let minSize = parameters.minSize
        let maxSize = parameters.maxSize
        if n <= minSize {
            state = nil
            return isFinal || n == maxSize ? n : nil
        }
        let end = Swift.min(n, maxSize)
        let averageSize = parameters.averageSize
        let normal = Swift.min(end, averageSize)
        let maskS = parameters.maskSmall
        let maskL = parameters.maskLarge
        var startHash: UInt64 = 0
        var start = minSize
        if let resume = state, resume.position >= minSize, resume.position <= end {
            startHash = resume.hash
            start = resume.position
        }
        let (found, stop) = GearTable.values.withUnsafeBufferPointer { gear -> (Int?, ScanState) in
            let bytes = data.bindMemory(to: UInt8.self)
            var h = startHash
            var i = start
            // Four positions per step, each computed from the same `h`, so the loop-carried dependency is one
            // shift and one add per four bytes instead of per byte; one combined test covers all four (cuts are
            // rare), and the exact position is found only when it fires. Same cut points as the byte-wise rule.
            func scan(until limit: Int, mask: UInt64) -> Int? {
                while i + 4 <= limit {
                    let g0 = gear[Int(bytes[i])]
                    let g1 = gear[Int(bytes[i + 1])]
                    let g2 = gear[Int(bytes[i + 2])]
                    let g3 = gear[Int(bytes[i + 3])]
                    let h1 = (h &<< 1) &+ g0
                    let h2 = (h &<< 2) &+ ((g0 &<< 1) &+ g1)
                    let h3 = (h &<< 3) &+ ((g0 &<< 2) &+ (g1 &<< 1) &+ g2)
                    let h4 = (h &<< 4) &+ ((g0 &<< 3) &+ (g1 &<< 2) &+ (g2 &<< 1) &+ g3)
                    if (h1 & mask) == 0 || (h2 & mask) == 0 || (h3 & mask) == 0 || (h4 & mask) == 0 {
                        if (h1 & mask) == 0 { return i + 1 }
                        if (h2 & mask) == 0 { return i + 2 }
                        if (h3 & mask) == 0 { return i + 3 }
                        return i + 4
                    }
                    h = h4
                    i += 4
                }
                while i < limit {
                    h = (h &<< 1) &+ gear[Int(bytes[i])]
                    i += 1
                    if h & mask == 0 { return i }
                }
                return nil
            }
            if i < normal, let cut = scan(until: normal, mask: maskS) { return (cut, ScanState(position: i, hash: h)) }
            let cut = scan(until: end, mask: maskL)
            return (cut, ScanState(position: i, hash: h))
        }
        if let found {
            state = nil
            return found
        }
        if end == maxSize || isFinal {
            state = nil
            return end
        }
        state = stop
        return nil
    }

    /// Splits a whole in-memory buffer into chunk lengths. For tests, tools and small files.
    public func chunkLengths(_ data: UnsafeRawBufferPointer) -> [Int] {
        var lengths: [Int] = []
        var offset = 0
        while offset < data.count {
            let rest = UnsafeRawBufferPointer(rebasing: data[offset...])
            let length = nextChunkLength(rest, isFinal: true)!
            lengths.append(length)
            offset += length
        }
        return lengths
    }

    public func chunkLengths(_ data: [UInt8]) -> [Int] {
        data.withUnsafeBytes { chunkLengths($0) }
    }
}
