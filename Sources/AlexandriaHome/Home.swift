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
    /// The peer table `node run` keeps (JSON), and the state file it rewrites every two seconds for `status`/`peers`.
    public var peerTablePath: String { path + "/peers.json" }
    public var nodeStatePath: String { path + "/node-state.json" }

    public var isInitialized: Bool { access(storePath + "/index.sqlite", F_OK) == 0 }

    /// Per-peer scores kept across fetches (`PeerScores`).
    public var peerScoresPath: String { path + "/peer-scores.tsv" }

    /// Creates the home, its store, a default config and a node key. Leaves an existing home as it is.
    /// Returns false if the home was already initialised.
    @discardableResult
    public func initialize() throws -> Bool {
        let existed = isInitialized
        try Self.makeDirectory(path, mode: 0o700)
        try Self.makeDirectory(keysPath, mode: 0o700)
        try ContentStore.initialize(at: storePath)
        if access(configPath, F_OK) != 0 {
            try Self.writeFileAtomically(configPath, Array(HomeConfig.defaultText.utf8), mode: 0o644)
        }
        if access(nodeKeyPath, F_OK) != 0 {
            let key = Curve25519.Signing.PrivateKey()
            try Self.writeFileAtomically(nodeKeyPath, Array(key.rawRepresentation), mode: 0o600)
        }
        return !existed
    }

    /// Reads and checks `config.toml`; a missing file means the defaults.
    public func config() throws -> HomeConfig {
        guard let bytes = try Self.readFile(configPath, limit: TOMLSubset.maxBytes) else { return HomeConfig() }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw HomeError("\(configPath) is not UTF-8 text")
        }
        do {
            return try HomeConfig(toml: TOMLSubset(parsing: text))
        } catch let error as TOMLSubset.ParseError {
            throw HomeError("\(configPath), \(error)")
        }
    }

    /// Opens the store with the settings from the config.
    public func openStore() throws -> ContentStore {
        guard isInitialized else {
            throw HomeError("no Alexandria home at \(path); run `alexandria init` (or pass --home)")
        }
        return try ContentStore(directory: storePath, options: config().storeOptions)
    }

    /// The node's identity key.
    public func nodeKey() throws -> Curve25519.Signing.PrivateKey {
        guard let bytes = try Self.readFile(nodeKeyPath, limit: 64) else {
            throw HomeError("no node key at \(nodeKeyPath); run `alexandria init`")
        }
        return try Curve25519.Signing.PrivateKey(rawRepresentation: bytes)
    }

    // MARK: - Files

    static func makeDirectory(_ path: String, mode: mode_t) throws {
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw HomeError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Reads a whole small file; nil if it does not exist. Refuses files over `limit` bytes.
    public static func readFile(_ path: String, limit: Int) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw HomeError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HomeError("cannot read \(path): \(String(cString: strerror(errno)))")
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
        guard fd >= 0 else { throw HomeError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
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
    public var description: String { message }
}
