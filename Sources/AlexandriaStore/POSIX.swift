#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small wrappers that retry on EINTR and loop over short reads and writes.
enum POSIX {
    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (less only at end of file).
    static func pread(
        _ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String
    )
        throws(StoreError) -> Int
    {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.posix("cannot read", path: path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads `first` and then `second` from `offset` on, in one system call when the kernel fills both (a short read
    /// is finished piece by piece); returns how many bytes were read in all (less only at end of file).
    static func pread(
        _ fd: Int32, _ first: UnsafeMutableRawBufferPointer, _ second: UnsafeMutableRawBufferPointer, at offset: Int,
        path: String
    )
        throws(StoreError) -> Int
    {
        var iov = [
            iovec(iov_base: first.baseAddress, iov_len: first.count),
            iovec(iov_base: second.baseAddress, iov_len: second.count),
        ]
        var n: Int
        repeat { n = Glibc.preadv(fd, &iov, 2, off_t(offset)) } while n < 0 && errno == EINTR
        if n < 0 { throw StoreError.posix("cannot read", path: path) }
        if n == 0 || n == first.count + second.count { return n }
        var done = n
        if done < first.count {
            done += try pread(
                fd, UnsafeMutableRawBufferPointer(rebasing: first[done...]), at: offset + done, path: path)
            if done < first.count { return done }
        }
        let rest = UnsafeMutableRawBufferPointer(rebasing: second[(done - first.count)...])
        let more = try pread(fd, rest, at: offset + done, path: path)
        return done + more
    }

    static func pwrite(
        _ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int, path: String
    )
        throws(StoreError)
    {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.posix("cannot write", path: path)
            }
            done += n
        }
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(StoreError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw StoreError.posix("cannot open", path: path)
        }
    }

    static func fsync(_ fd: Int32, path: String) throws(StoreError) {
        if Glibc.fdatasync(fd) != 0 { throw StoreError.posix("cannot sync", path: path) }
    }

    /// Syncs a directory so a rename or a new file in it survives a power loss.
    static func fsyncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = Glibc.fsync(fd)
            Glibc.close(fd)
        }
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(StoreError) {
        if Glibc.mkdir(path, mode) != 0 && errno != EEXIST {
            throw StoreError.posix("cannot create directory", path: path)
        }
    }

    static func fileSize(_ fd: Int32, path: String) throws(StoreError) -> Int {
        var st = stat()
        if fstat(fd, &st) != 0 { throw StoreError.posix("cannot stat", path: path) }
        return Int(st.st_size)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}

/// A process-wide advisory lock on a file (`flock`), held by whoever writes to the store.
final class FileLock: Sendable {
    private let fd: Int32
    let path: String

    init(path: String) throws(StoreError) {
        self.path = path
        fd = try POSIX.open(path, O_RDWR | O_CREAT, mode: 0o644)
    }

    deinit { close(fd) }

    /// Takes the lock, waiting up to `timeoutSeconds` for another process to let go of it.
    func lock(timeoutSeconds: Double) throws(StoreError) {
        let deadline = Self.now() + timeoutSeconds
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { throw StoreError.posix("cannot lock", path: path) }
            if Self.now() > deadline {
                throw StoreError(
                    .indexLocked,
                    "another process is writing to this store (\(path) is locked); wait for it to finish or stop it")
            }
            usleep(20_000)
        }
    }

    /// Takes the lock if nobody holds it; false if another holder has it.
    func tryLock() throws(StoreError) -> Bool {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return false }
            throw StoreError.posix("cannot lock", path: path)
        }
        return true
    }

    func unlock() { flock(fd, LOCK_UN) }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// `sync_file_range(2)`: starts writeback of a range without waiting (a GNU extension Glibc's module map hides).
@_silgen_name("sync_file_range")
func c_sync_file_range(_ fd: Int32, _ offset: Int64, _ count: Int64, _ flags: UInt32) -> Int32
let SYNC_FILE_RANGE_WRITE_FLAG: UInt32 = 2

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps the closure's typed error.
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws(StoreError) -> T) throws(StoreError) -> T {
        let result: Result<T, StoreError> = withUnsafeBytes { p in
            do throws(StoreError) { return .success(try body(p)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// `withUnsafeMutableBytes` that keeps the closure's typed error.
    mutating func withMutableBytes<T>(
        _ body: (UnsafeMutableRawBufferPointer) throws(StoreError) -> T
    )
        throws(StoreError) -> T
    {
        let result: Result<T, StoreError> = withUnsafeMutableBytes { p in
            do throws(StoreError) { return .success(try body(p)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
