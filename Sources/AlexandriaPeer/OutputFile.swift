import AlexandriaCore
import AlexandriaStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The temporary file a fetch assembles: verified chunks are written at their offsets; it is renamed into place
/// only after its whole SHA-256 matches.
final class OutputFile: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw StoreError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func prepare(size: UInt64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw StoreError.posixError("cannot size", path) }
    }

    func write(_ chunk: VerifiedChunk, at offsets: [UInt64]) throws {
        lock.lock()
        defer { lock.unlock() }
        for offset in offsets {
            try chunk.bytes.withUnsafeBytes { p in
                var done = 0
                while done < p.count {
                    let n = pwrite(fd, p.baseAddress! + done, p.count - done, off_t(offset) + off_t(done))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw StoreError.posixError("cannot write", path)
                    }
                    done += n
                }
            }
        }
    }

    /// Copies the chunks at `indices` from the local store (each verified on read). Returns the bytes copied.
    func fillFromStore(_ store: ContentStore, recipe: FileRecipe, only indices: Set<Int>) throws -> UInt64 {
        var copied: UInt64 = 0
        let held = try store.holds(recipe.chunks.map(\.id))
        var offsets: [ContentHash: [UInt64]] = [:]
        for chunk in recipe.chunks { offsets[chunk.id, default: []].append(chunk.offset) }
        var written = Set<ContentHash>()
        for i in indices.sorted() where held.contains(recipe.chunks[i].id) {
            let chunk = recipe.chunks[i]
            if written.contains(chunk.id) { continue }
            let bytes = try store.chunk(chunk.id)
            guard let verified = VerifiedChunk(id: chunk.id, bytes: bytes) else { continue }
            try write(verified, at: offsets[chunk.id] ?? [])
            written.insert(chunk.id)
            copied += UInt64(bytes.count)
        }
        return copied
    }

    func sha256() throws -> ContentHash {
        var hasher = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.posixError("cannot read", path)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += off_t(n)
        }
        return hasher.finalize()
    }

    func finish(renamingTo final: String) throws {
        guard fsync(fd) == 0 else { throw StoreError.posixError("cannot sync", path) }
        guard rename(path, final) == 0 else { throw StoreError.posixError("cannot rename to \(final)", path) }
    }

    func discard() { unlink(path) }
}

extension StoreError {
    static func posixError(_ what: String, _ path: String) -> StoreError {
        StoreError(.io, "\(what) \(path): \(String(cString: strerror(errno)))")
    }
}
