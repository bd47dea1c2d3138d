import AlexandriaCore

/// A chunk ready to go on the wire: verified against its id just now, in its stored form when that is compressed.
public struct ServedChunk: Sendable {
    public let codec: UInt8
    public let rawLength: Int
    public let payload: [UInt8]
}

extension ContentStore {
    /// Reads a chunk for a peer: decoded and hashed first (a chunk that fails its hash is never sent, and is flagged),
    /// then sent compressed if it is stored compressed. Nil if the store does not hold it intact.
    public func chunkForServing(_ id: ContentHash, context: ServeContext) throws(StoreError) -> ServedChunk? {
        guard let location = try withReader({ (db) throws(StoreError) in try location(of: id, in: db) }) else {
            return nil
        }
        guard location.rawLength <= context.raw.count else { return nil }
        let raw = UnsafeMutableRawBufferPointer(rebasing: context.raw[0..<location.rawLength])
        do throws(StoreError) {
            try readVerified(location, into: raw, context: context.read)
        } catch {
            if error.code == .corruptChunk { markBad(id) }
            return nil
        }
        if location.codec == .raw {
            return ServedChunk(codec: 0, rawLength: location.rawLength, payload: Array(UnsafeRawBufferPointer(raw)))
        }
        let stored = UnsafeRawBufferPointer(
            rebasing: context.read.record[PackRecordHeader.size..<PackRecordHeader.size + location.storedLength])
        return ServedChunk(codec: location.codec.rawValue, rawLength: location.rawLength, payload: Array(stored))
    }

    /// Which chunks of a file this store holds: all, none, or a bitfield (MSB first).
    public func availability(
        of address: ContentHash
    ) throws(StoreError) -> (complete: Bool, chunkCount: Int, bits: [UInt8])? {
        guard let recipe = try recipe(of: address) else { return nil }
        let held = try holds(recipe.chunks.map(\.id))
        var bits = [UInt8](repeating: 0, count: (recipe.chunks.count + 7) / 8)
        for (i, chunk) in recipe.chunks.enumerated() where held.contains(chunk.id) {
            bits[i / 8] |= 0x80 >> UInt8(i % 8)
        }
        return (held.count == Set(recipe.chunks.map(\.id)).count, recipe.chunks.count, bits)
    }
}

/// Per-connection scratch for serving.
public final class ServeContext: @unchecked Sendable {
    let raw: UnsafeMutableRawBufferPointer
    let read: ReadContext

    public init() {
        raw = .allocate(byteCount: Limits.maxChunkBytes, alignment: 64)
        read = ReadContext(maxChunk: Limits.maxChunkBytes)
    }

    deinit { raw.deallocate() }
}

/// Decodes chunk payloads received from peers (the store codecs). One per task; not thread-safe.
public final class ChunkDecoder: @unchecked Sendable {
    private let coder = ChunkCoder(maxChunk: Limits.maxChunkBytes)

    public init() {}

    /// The original bytes, or nil if the payload is malformed for its codec.
    public func decode(codec: UInt8, payload: [UInt8], rawLength: Int) -> [UInt8]? {
        guard let c = ChunkCodec(rawValue: codec), rawLength > 0, rawLength <= Limits.maxChunkBytes else { return nil }
        if c == .raw { return payload.count == rawLength ? payload : nil }
        var out = [UInt8](repeating: 0, count: rawLength)
        let ok = payload.withUnsafeBytes { p in out.withUnsafeMutableBytes { coder.decode(c, p, into: $0) } }
        return ok ? out : nil
    }
}

extension ContentStore {
    /// Re-reads a stored file and checks every chunk and the whole-file SHA-256, hashing each chunk together with the
    /// file stream over the same bytes (the two-way kernel, as ingest does). Returns nil when everything matches,
    /// otherwise what failed. Used by audit; does not write anything.
    public func verifyContent(of address: ContentHash, progress: ((Int) -> Void)? = nil) throws(StoreError) -> String? {
        guard let recipe = try recipe(of: address) else { return "not in the local store" }
        let context = ReadContext(maxChunk: recipe.chunker.maxSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: recipe.chunker.maxSize, alignment: 64)
        defer { buffer.deallocate() }
        var file = SHA256Stream()
        for chunk in recipe.chunks {
            guard let location = try withReader({ (db) throws(StoreError) in try location(of: chunk.id, in: db) }),
                location.rawLength == Int(chunk.length)
            else { return "chunk \(chunk.id) is missing or damaged" }
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<location.rawLength])
            do throws(StoreError) { try loadForAudit(location, into: bytes, context: context) } catch {
                if error.code == .corruptChunk { markBad(chunk.id) }
                return error.message
            }
            var one = SHA256Stream()
            SHA256Stream.update(&file, UnsafeRawBufferPointer(bytes), &one, UnsafeRawBufferPointer(bytes))
            guard one.finalize() == chunk.id else {
                markBad(chunk.id)
                return Self.corrupt(location, path: sourcePath(location), "its bytes do not hash to its id")
                    .message
            }
            progress?(location.rawLength)
        }
        return file.finalize() == address ? nil : "the bytes do not hash to the file's address"
    }
}
