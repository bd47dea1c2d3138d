#if canImport(Glibc)
    import Glibc
#endif

/// The lock that makes one home run at most one daemon: an exclusive `flock` on `<home>/node.lock`, held for the
/// daemon's whole life. The kernel drops it when the process ends however it ends (kill -9 included), so a crashed
/// daemon never leaves a stale lock behind. The file holds the holder's pid, for the message a second daemon prints.
public final class NodeLock: Sendable {
    private let fd: Int32
    public let path: String

    /// Takes the lock or throws a `HomeError` naming the daemon that holds it.
    public init(home: Home) throws {
        path = home.path + "/node.lock"
        guard home.isInitialized else {
            throw HomeError("no Alexandria home at \(home.path); run `alexandria init` (or pass --home)")
        }
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno
            var st = stat()
            if (reason == EACCES || reason == EPERM) && stat(path, &st) == 0 && st.st_uid != geteuid() {
                var home_ = stat()
                let owner = stat(home.path, &home_) == 0 ? home_.st_uid : st.st_uid
                throw HomeError(
                    "cannot open \(path): \(String(cString: strerror(reason))); it belongs to "
                        + "\(Home.userName(st.st_uid)), not to \(Home.userName(geteuid())) who runs this. Run "
                        + "alexandria as the home's owner, \(Home.userName(owner)) (sudo -u "
                        + "\(Home.userName(owner, bare: true)) alexandria …); or, if no daemon runs on this home, the "
                        + "file is stale: remove it (rm \(path)) as its owner or root")
            }
            throw HomeError(posix: "cannot open", path)
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let reason = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard reason == EWOULDBLOCK else {
                throw HomeError("cannot lock \(path): \(String(cString: strerror(reason)))")
            }
            let pid = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).filter(\.isNumber) : ""
            throw HomeError(
                "another `alexandria node run`\(pid.isEmpty ? "" : " (pid \(pid))") is already running on the home "
                    + "\(home.path); one daemon per home. Stop it first, or give this one its own --home")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit { close(fd) }
}
