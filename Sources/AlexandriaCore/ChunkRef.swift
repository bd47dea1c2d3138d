/// One chunk of a file: its id (the SHA-256 of its bytes), where it starts in the file, and its length.
///
/// The Merkle leaf of a chunk covers all three, so an inclusion proof proves not only that the chunk belongs to the
/// file but also *where*: a byte range can be verified against the file's root alone.
/// Leaf data, 48 bytes: `id (32) || offset (u64 big-endian) || length (u64 big-endian)`.
public struct ChunkRef: Hashable, Sendable, Codable {
    public let id: ContentHash
    public let offset: UInt64
    public let length: UInt32

    public init(id: ContentHash, offset: UInt64, length: UInt32) {
        self.id = id
        self.offset = offset
        self.length = length
    }

    public var end: UInt64 { offset + UInt64(length) }

    /// `SHA-256(0x00 || id || be64(offset) || be64(length))`.
    public var leafHash: ContentHash {
        var data = [UInt8](repeating: 0, count: 48)
        data.withUnsafeMutableBytes { raw in
            id.write(to: raw.baseAddress!)
            raw.storeBytes(of: offset.bigEndian, toByteOffset: 32, as: UInt64.self)
            raw.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 40, as: UInt64.self)
        }
        return MerkleTree.leafHash(data)
    }
}

/// The chunk list of a file with its Merkle root: what the index keeps and what a peer sends for a file.
public struct FileRecipe: Hashable, Sendable {
    public let address: ContentHash
    public let size: UInt64
    public let chunker: ChunkerParameters
    public let chunks: [ChunkRef]

    public init(address: ContentHash, size: UInt64, chunker: ChunkerParameters, chunks: [ChunkRef]) {
        self.address = address
        self.size = size
        self.chunker = chunker
        self.chunks = chunks
    }

    /// The RFC 6962 root over the chunks' leaf hashes.
    public var merkleRoot: ContentHash { MerkleTree.root(chunks.map(\.leafHash)) }

    /// Checks the chunk list is contiguous, covers `size` exactly, and respects the chunker's maximum.
    /// A recipe from a peer must pass this before any of its chunks is requested.
    public func validateLayout() throws(CoreError) {
        guard chunks.count <= Limits.maxChunksPerFile else {
            throw CoreError(.limitExceeded, "file has \(chunks.count) chunks; the limit is \(Limits.maxChunksPerFile)")
        }
        var expected: UInt64 = 0
        for (i, chunk) in chunks.enumerated() {
            guard chunk.offset == expected else {
                throw CoreError(.malformedRecipe, "chunk \(i) starts at \(chunk.offset), expected \(expected)")
            }
            guard chunk.length > 0, Int(chunk.length) <= chunker.maxSize else {
                throw CoreError(
                    .malformedRecipe, "chunk \(i) has length \(chunk.length) outside 1...\(chunker.maxSize)")
            }
            expected += UInt64(chunk.length)
        }
        guard expected == size else {
            throw CoreError(.malformedRecipe, "chunks cover \(expected) bytes but the file has \(size)")
        }
    }

    /// The indices of the chunks that overlap the byte range `range` (half-open).
    public func chunkIndices(covering range: Range<UInt64>) -> Range<Int> {
        guard !range.isEmpty, !chunks.isEmpty else { return 0..<0 }
        // Binary search for the first chunk whose end is after range.lowerBound.
        var lo = 0
        var hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunks[mid].end <= range.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        var last = lo
        while last < chunks.count && chunks[last].offset < range.upperBound { last += 1 }
        return lo..<last
    }
}
