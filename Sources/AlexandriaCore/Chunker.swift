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

    /// Returns the length of the next chunk at the start of `data`, or nil when `data` is shorter than
    /// `maxSize`, more data may follow (`isFinal == false`) and no cut point was found yet.
    ///
    /// With `isFinal == true` the answer is never nil (and 0 only for empty data).
    @inlinable
    public func nextChunkLength(_ data: UnsafeRawBufferPointer, isFinal: Bool) -> Int? {
        let n = data.count
        let minSize = parameters.minSize
        let maxSize = parameters.maxSize
        if n <= minSize { return isFinal || n == maxSize ? n : nil }
        let end = Swift.min(n, maxSize)
        let normal = Swift.min(end, parameters.averageSize)
        let maskS = parameters.maskSmall
        let maskL = parameters.maskLarge
        let found: Int? = GearTable.values.withUnsafeBufferPointer { gear -> Int? in
            let bytes = data.bindMemory(to: UInt8.self)
            var h: UInt64 = 0
            var i = minSize
            while i < normal {
                h = (h &<< 1) &+ gear[Int(bytes[i])]
                if h & maskS == 0 { return i + 1 }
                i += 1
            }
            while i < end {
                h = (h &<< 1) &+ gear[Int(bytes[i])]
                if h & maskL == 0 { return i + 1 }
                i += 1
            }
            return nil
        }
        if let found { return found }
        if end == maxSize || isFinal { return end }
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
