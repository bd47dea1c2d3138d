import AlexandriaCore

/// The header in front of every record in a pack file. All integers big-endian. 56 bytes:
///
/// ```
/// offset size field
///  0     4    magic "ALXR"
///  4     1    kind: 1 chunk, 2 file recipe, 3 file removal
///  5     1    codec (chunks: ChunkCodec; others 0)
///  6     2    reserved, 0
///  8     4    raw length: a chunk's original length; for other kinds the payload length
/// 12     4    stored length: the payload length that follows the header
/// 16     8    sequence: recipes and removals only (the newest per address wins on rebuild); chunks 0
/// 24    32    id: a chunk's SHA-256, or the file address of a recipe or removal
/// 56    ...   payload
/// ```
///
/// Records make packs self-describing: the index can be rebuilt by scanning them, and a scrub can check every
/// record without the index.
struct PackRecordHeader: Equatable {
    static let size = 56
    static let magic: UInt32 = 0x414C_5852  // "ALXR"

    enum Kind: UInt8 {
        case chunk = 1
        case recipe = 2
        case removal = 3
    }

    var kind: Kind
    var codec: ChunkCodec
    var rawLength: UInt32
    var storedLength: UInt32
    var sequence: UInt64
    var id: ContentHash

    var recordSize: Int { Self.size + Int(storedLength) }

    func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: Self.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: codec.rawValue, toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: rawLength.bigEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: storedLength.bigEndian, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: sequence.bigEndian, toByteOffset: 16, as: UInt64.self)
        id.write(to: p + 24)
    }

    /// Parses a header; nil if the magic, kind, codec or reserved bytes are wrong or a length is over its limit.
    init?(parsing p: UnsafeRawBufferPointer) {
        guard p.count >= Self.size,
            UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == Self.magic,
            let kind = Kind(rawValue: p[4]), let codec = ChunkCodec(rawValue: p[5]), p[6] == 0, p[7] == 0
        else { return nil }
        let raw = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let stored = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        switch kind {
        case .chunk:
            guard raw > 0, raw <= Limits.maxChunkBytes, stored <= Limits.maxChunkBytes + Limits.maxChunkBytes / 8
            else { return nil }
        case .recipe, .removal:
            guard codec == .raw, raw == stored, stored <= StoreLimits.maxRecipeBytes else { return nil }
        }
        self.kind = kind
        self.codec = codec
        self.rawLength = raw
        self.storedLength = stored
        self.sequence = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        self.id = ContentHash(pointer: p.baseAddress! + 24)
    }

    init(kind: Kind, codec: ChunkCodec, rawLength: UInt32, storedLength: UInt32, sequence: UInt64, id: ContentHash) {
        self.kind = kind
        self.codec = codec
        self.rawLength = rawLength
        self.storedLength = storedLength
        self.sequence = sequence
        self.id = id
    }
}

/// Named limits of the store's own formats.
public enum StoreLimits {
    /// Largest recipe record: 2^24 chunks of 36 bytes plus the fixed part.
    public static let maxRecipeBytes: UInt32 = 45 + 36 << 24
    /// A pack is sealed and a new one started once it passes this size, by default (`StoreOptions.packTargetBytes`).
    public static let packTargetBytes = 1 << 30
    /// The range `StoreOptions.packTargetBytes` may be set in: at least one largest chunk, at most 16 GiB.
    public static let packTargetRange = (1 << 20)...(16 << 30)
}

/// The recipe record payload: `size u64 | averageBits u8 | count u32 | merkle root (32) | count × (id 32, length u32)`,
/// all big-endian. It lets `rebuildIndex` restore a file's row from the packs alone.
enum RecipeCodec {
    static func encode(_ recipe: FileRecipe, root: ContentHash) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 45 + 36 * recipe.chunks.count)
        out.withUnsafeMutableBytes { p in
            p.storeBytes(of: recipe.size.bigEndian, toByteOffset: 0, as: UInt64.self)
            p.storeBytes(of: UInt8(recipe.chunker.averageBits), toByteOffset: 8, as: UInt8.self)
            p.storeBytes(of: UInt32(recipe.chunks.count).bigEndian, toByteOffset: 9, as: UInt32.self)
            root.write(to: p.baseAddress! + 13)
            var at = 45
            for chunk in recipe.chunks {
                chunk.id.write(to: p.baseAddress! + at)
                p.storeBytes(of: chunk.length.bigEndian, toByteOffset: at + 32, as: UInt32.self)
                at += 36
            }
        }
        return out
    }

    static func decode(_ p: UnsafeRawBufferPointer, address: ContentHash) -> (FileRecipe, ContentHash)? {
        guard p.count >= 45 else { return nil }
        let size = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard let chunker = ChunkerParameters(averageBits: Int(p[8])) else { return nil }
        let count = Int(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 9, as: UInt32.self)))
        guard count <= Limits.maxChunksPerFile, p.count == 45 + 36 * count else { return nil }
        let root = ContentHash(pointer: p.baseAddress! + 13)
        let chunks = ChunkList.decode(UnsafeRawBufferPointer(rebasing: p[45...]), count: count)
        let recipe = FileRecipe(address: address, size: size, chunker: chunker, chunks: chunks)
        guard (try? recipe.validateLayout()) != nil else { return nil }
        return (recipe, root)
    }
}

/// The `files.chunk_list` encoding: `count × (id 32, length u32 BE)`.
enum ChunkList {
    static func encode(_ chunks: [ChunkRef]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 36 * chunks.count)
        out.withUnsafeMutableBytes { p in
            var at = 0
            for chunk in chunks {
                chunk.id.write(to: p.baseAddress! + at)
                p.storeBytes(of: chunk.length.bigEndian, toByteOffset: at + 32, as: UInt32.self)
                at += 36
            }
        }
        return out
    }

    static func decode(_ p: UnsafeRawBufferPointer, count: Int) -> [ChunkRef] {
        var chunks: [ChunkRef] = []
        chunks.reserveCapacity(count)
        var offset: UInt64 = 0
        for i in 0..<count {
            let id = ContentHash(pointer: p.baseAddress! + 36 * i)
            let length = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 36 * i + 32, as: UInt32.self))
            chunks.append(ChunkRef(id: id, offset: offset, length: length))
            offset += UInt64(length)
        }
        return chunks
    }
}
