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
    /// The file's size when opened: nonzero when an interrupted fetch left it (its verified chunks may be reused).
    let initialSize: UInt64
    private let lock = NSLock()

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw StoreError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw StoreError(.io, "\(path) exists and is not a regular file; remove it")
        }
        initialSize = UInt64(st.st_size)
    }

    deinit { close(fd) }

    func prepare(size: UInt64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw StoreError.posixError("cannot size", path) }
    }

    /// Writes verified bytes at each offset.
    func write(_ bytes: [UInt8], at offsets: [UInt64]) throws {
        lock.lock()
        defer { lock.unlock() }
        for offset in offsets {
            try bytes.withUnsafeBytes { p in
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

    /// Reads `length` bytes at `offset` (short only at the end of the file) and passes them to `body`.
    func read<T>(at offset: UInt64, length: Int, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        var buffer = [UInt8](repeating: 0, count: length)
        var done = 0
        try buffer.withUnsafeMutableBytes { p in
            while done < length {
                let n = pread(fd, p.baseAddress! + done, length - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StoreError.posixError("cannot read", path)
                }
                if n == 0 { break }
                done += n
            }
        }
        return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<done])) }
    }

    /// Syncs (when asked) and renames the file into place.
    func finish(renamingTo final: String, sync: Bool) throws {
        if sync { guard fsync(fd) == 0 else { throw StoreError.posixError("cannot sync", path) } }
        guard rename(path, final) == 0 else { throw StoreError.posixError("cannot rename to \(final)", path) }
    }

    func discard() { unlink(path) }

    /// `path` made absolute against the working directory (the store records linked files by absolute path).
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }
}

extension StoreError {
    static func posixError(_ what: String, _ path: String) -> StoreError {
        StoreError(.io, "\(what) \(path): \(String(cString: strerror(errno)))")
    }
}
