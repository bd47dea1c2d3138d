import AlexandriaCore
import AlexandriaStore
import Crypto

#if canImport(Glibc)
    import Glibc
#endif

/// A node's home directory: its store, config and keys. Several homes let several nodes share a machine.
///
/// ```
/// <home>/config.toml      settings (see `HomeConfig`)
/// <home>/store/           the content store (index.sqlite, packs/)
/// <home>/keys/node.key    the node's Ed25519 identity, mode 0600
/// <home>/peer-scores.tsv  per-peer scores kept across fetches
/// ```
public struct Home: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// `--home`, else `$ALEXANDRIA_HOME`, else `~/.alexandria`.
    public static func resolve(_ explicit: String?) -> Home {
        if let explicit, !explicit.isEmpty { return Home(path: explicit) }
        if let env = getenv("ALEXANDRIA_HOME").map({ String(cString: $0) }), !env.isEmpty { return Home(path: env) }
        let base = getenv("HOME").map { String(cString: $0) } ?? "."
        return Home(path: base + "/.alexandria")
    }

    public var storePath: String { path + "/store" }
    public var configPath: String { path + "/config.toml" }
    public var keysPath: String { path + "/keys" }
    public var nodeKeyPath: String { keysPath + "/node.key" }
    /// The node key's public half, `ed25519:<64 hex>` and a newline, written beside it so that a damaged node key
    /// (any 32 bytes are a valid key: a flipped byte silently makes another node) is seen by `verify`.
    public var nodePublicKeyPath: String { keysPath + "/node.pub" }
    /// The peer table `node run` keeps (JSON), and the state file it rewrites every two seconds for `status`/`peers`.
    public var peerTablePath: String { path + "/peers.json" }
    public var nodeStatePath: String { path + "/node-state.json" }
    /// When `node run` last scrubbed the store (Unix seconds), so a restart does not postpone or repeat a scrub.
    public var scrubStatePath: String { path + "/scrub-state" }

    /// True once `init` ran: the store's index or its packs directory exists (a lost index is rebuilt from the packs
    /// when the store opens, so a missing `index.sqlite` alone does not make a home new).
    public var isInitialized: Bool {
        access(storePath + "/index.sqlite", F_OK) == 0 || access(storePath + "/packs", F_OK) == 0
    }

    /// Per-peer scores kept across fetches (`PeerScores`).
    public var peerScoresPath: String { path + "/peer-scores.tsv" }

    /// Creates the home, its store, a default config and a node key. Leaves an existing home's contents as they are.
    /// Returns false if the home was already initialised.
    ///
    /// The home and its keys directory end up mode 0700 and the node key 0600 whoever made the directory first:
    /// `useradd --create-home`, systemd's `StateDirectory=` and container volumes all make 0755 directories, and the
    /// home's permissions are what keeps other users from reading the keys or planting chunks in the store. A
    /// directory this user does not own, or a shared one (world-writable, such as /tmp), is refused before anything
    /// is written to it.
    @discardableResult
    public func initialize() throws -> Bool {
        let existed = isInitialized
        try Self.makeDirectory(path, mode: 0o700)
        try Self.makePrivate(path)
        try checkWritable()
        try Self.makeDirectory(keysPath, mode: 0o700)
        try Self.makePrivate(keysPath)
        try ContentStore.initialize(at: storePath)
        if access(configPath, F_OK) != 0 {
            try Self.writeFileAtomically(configPath, Array(HomeConfig.defaultText.utf8), mode: 0o644)
        }
        if access(nodeKeyPath, F_OK) != 0 {
            let key = Curve25519.Signing.PrivateKey()
            try Self.writeFileAtomically(nodeKeyPath, Array(key.rawRepresentation), mode: 0o600)
        } else {
            try Self.makePrivate(nodeKeyPath, mode: 0o600)
        }
        if access(nodePublicKeyPath, F_OK) != 0, let key = try? nodeKey() {
            try Self.writeFileAtomically(nodePublicKeyPath, Array(Self.describe(key).utf8), mode: 0o644)
        }
        return !existed
    }

    static func describe(_ key: Curve25519.Signing.PrivateKey) -> String {
        "ed25519:" + key.publicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined() + "\n"
    }

    /// Why the node key is not the one `node.pub` records, with the fix; nil if it is (or there is no record).
    public func nodeKeyMismatch() -> String? {
        guard let recorded = (try? Self.readFile(nodePublicKeyPath, limit: 256)).flatMap({ $0 }),
            let key = try? nodeKey()
        else { return nil }
        guard String(decoding: recorded, as: UTF8.self) == Self.describe(key) else {
            return "the node key \(nodeKeyPath) is not the one recorded in \(nodePublicKeyPath) (one of them is "
                + "damaged, or the key was replaced): restore node.key from a backup; if this node was given a new "
                + "identity on purpose, remove node.pub and run `alexandria init` to record the new one"
        }
        return nil
    }

    /// Makes a path this user owns private (`mode`), refusing one owned by another user or shared with everyone.
    static func makePrivate(_ path: String, mode: mode_t = 0o700) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw HomeError(posix: "cannot read the mode of", path) }
        if st.st_mode & S_IFMT == S_IFDIR && st.st_mode & 0o002 != 0 {
            throw HomeError(
                "\(path) is shared with every user (mode \(String(st.st_mode & 0o7777, radix: 8))); a home must be a "
                    + "directory of its own, such as \(path)/alexandria")
        }
        let me = geteuid()
        guard st.st_uid == me else {
            throw HomeError(
                "\(path) belongs to \(userName(st.st_uid)), not to \(userName(me)) who runs this; run alexandria as "
                    + "that user (sudo -u \(userName(st.st_uid, bare: true)) alexandria …), or give the home to this "
                    + "one: chown -R \(userName(me, bare: true)): \(path)")
        }
        if st.st_mode & 0o777 != mode && chmod(path, mode) != 0 {
            throw HomeError(posix: "cannot make private (chmod \(String(mode, radix: 8)))", path)
        }
    }

    /// Checks that this user can write to the home and its store, where `node run`, `fetch`, `add` and `publish`
    /// write: a read-only file system or a directory without write permission fails here, with the reason, instead
    /// of as a database error later (or, for the daemon's state files, not at all).
    public func checkWritable() throws {
        let paths = [path, storePath, storePath + "/packs", storePath + "/index.sqlite", catalogPath, keysPath]
        for p in paths where access(p, F_OK) == 0 {
            if access(p, W_OK) == 0 { continue }
            let code = errno
            var fs = statvfs()
            if code == EROFS || (statvfs(p, &fs) == 0 && fs.f_flag & UInt(ST_RDONLY) != 0) {
                throw HomeError(
                    "the home \(path) is on a read-only file system (\(p) cannot be written); the node writes its "
                        + "store, catalog and state there: mount it read-write, or choose a writable --home")
            }
            var st = stat()
            let owner = stat(p, &st) == 0 ? ", owned by \(Self.userName(st.st_uid))" : ""
            throw HomeError(
                "\(p) is not writable by \(Self.userName(geteuid())) (\(String(cString: strerror(code)))\(owner)); "
                    + "run alexandria as the home's owner, or fix the permissions (chmod u+w, chown)")
        }
    }

    /// "uid 999 (alexandria)", or with `bare` the name alone (the uid if it has none).
    static func userName(_ uid: uid_t, bare: Bool = false) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let name: String? =
            getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0 && result != nil
            ? String(cString: entry.pw_name) : nil
        if bare { return name ?? String(uid) }
        return name.map { "uid \(uid) (\($0))" } ?? "uid \(uid)"
    }

    /// Reads and checks `config.toml`; a missing file means the defaults. An error names the file, the line, and
    /// the two ways out: fix that line, or `alexandria init --reset-config`.
    public func config() throws -> HomeConfig {
        let bytes: [UInt8]?
        do {
            bytes = try Self.readFile(configPath, limit: TOMLDocument.maxBytes)
        } catch let error as HomeError {
            throw HomeError(error.message + "; " + resetConfigAdvice)
        }
        guard let bytes else { return HomeConfig() }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw HomeError(
                "\(configPath), line \(Self.firstNonUTF8Line(bytes)): not UTF-8 text (a damaged byte?); "
                    + resetConfigAdvice)
        }
        let toml: TOMLDocument
        do {
            toml = try TOMLDocument(parsing: text)
        } catch {
            // toml++ starts its messages with "Error while parsing"; one "error:" prefix is enough.
            let message = "\(error)".replacingOccurrences(of: "Error while parsing ", with: "cannot parse the ")
            throw HomeError("\(configPath), \(message); " + resetConfigAdvice)
        }
        do {
            return try HomeConfig(toml: toml)
        } catch let error as HomeError {
            throw HomeError("\(configPath), \(HomeConfig.locate(error.message, in: toml)); " + resetConfigAdvice)
        }
    }

    var resetConfigAdvice: String {
        "fix that line, or run `alexandria init --reset-config --home \(path)` to save this file aside and write the "
            + "default config (nothing else in the home changes)"
    }

    /// The 1-based line of the first byte sequence that is not UTF-8.
    static func firstNonUTF8Line(_ bytes: [UInt8]) -> Int {
        var line = 1
        for piece in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if String(validating: piece, as: UTF8.self) == nil { return line }
            line += 1
        }
        return line
    }

    /// Saves `config.toml` aside as `config.toml.broken-<unix time>` (if there is one) and writes the default config
    /// in its place. Touches nothing else. Returns where the old file went, nil if there was none.
    @discardableResult
    public func resetConfig() throws -> String? {
        guard access(path, F_OK) == 0 else {
            throw HomeError("no Alexandria home at \(path); run `alexandria init` (or pass --home)")
        }
        var aside: String?
        if access(configPath, F_OK) == 0 {
            var candidate = configPath + ".broken-\(time(nil))"
            var n = 1
            while access(candidate, F_OK) == 0 {
                candidate = configPath + ".broken-\(time(nil))-\(n)"
                n += 1
            }
            guard rename(configPath, candidate) == 0 else { throw HomeError(posix: "cannot move aside", configPath) }
            aside = candidate
        }
        try Self.writeFileAtomically(configPath, Array(HomeConfig.defaultText.utf8), mode: 0o644)
        return aside
    }

    /// Opens the store with the settings from the config.
    public func openStore() throws -> ContentStore { try openStore(catchingUp: true) }

    /// Opens the store; `catchingUp: false` leaves an index that is behind the packs as it is (for `verify`).
    public func openStore(catchingUp: Bool) throws -> ContentStore {
        guard isInitialized else {
            throw HomeError("no Alexandria home at \(path); run `alexandria init` (or pass --home)")
        }
        var options = try config().storeOptions
        options.catchUpAtOpen = catchingUp
        if let s3 = try objectStore() {
            options.remotePacks = s3.remotePacks
            options.packFilled = s3.packFilled
        }
        return try ContentStore(directory: storePath, options: options)
    }

    /// The node's identity key.
    public func nodeKey() throws -> Curve25519.Signing.PrivateKey {
        guard let bytes = try Self.readFile(nodeKeyPath, limit: 64) else {
            throw HomeError("no node key at \(nodeKeyPath); run `alexandria init`")
        }
        var st = stat()
        if stat(nodeKeyPath, &st) == 0 && st.st_mode & 0o077 != 0 {
            throw HomeError(
                "\(nodeKeyPath) can be read by other users (mode \(String(st.st_mode & 0o777, radix: 8))); "
                    + "run `chmod 600 \(nodeKeyPath)` (or `alexandria init`, which fixes it) first")
        }
        return try Curve25519.Signing.PrivateKey(rawRepresentation: bytes)
    }

    // MARK: - Files

    static func makeDirectory(_ path: String, mode: mode_t) throws {
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw HomeError(posix: "cannot create", path)
        }
    }

    /// Reads a whole small file; nil if it does not exist. Refuses files over `limit` bytes.
    public static func readFile(_ path: String, limit: Int) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw HomeError(posix: "cannot open", path)
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HomeError(posix: "cannot read", path)
            }
            if n == 0 { break }
            out += buffer[0..<n]
            if out.count > limit { throw HomeError("\(path) is larger than \(limit) bytes") }
        }
        return out
    }

    /// Writes `bytes` to a temporary file, syncs it, and renames it over `path`. The file gets `mode` narrowed by the
    /// process's umask (a service's `UMask=0077` makes every file private), never wider: the temporary file is
    /// always created afresh, so a leftover one cannot lend it another mode.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw HomeError(posix: "cannot create", temporary) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw HomeError("cannot write \(temporary): \(message)")
            }
            done += n
        }
        fsync(fd)
        close(fd)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw HomeError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// The one error type of AlexandriaHome.
public struct HomeError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    /// `errno` after a failed call on `path`, with what was being done.
    init(posix what: String, _ path: String) {
        let code = errno
        var text = "\(what) \(path): \(String(cString: strerror(code)))"
        if code == EACCES || code == EPERM {
            text += " (running as \(Home.userName(geteuid())); run alexandria as the home's owner)"
        } else if code == EROFS {
            text += " (mount it read-write, or choose a writable --home)"
        }
        message = text
    }
    public var description: String { message }
}
