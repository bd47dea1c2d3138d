import AlexandriaManifest
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Publisher signing keys in `<home>/keys/publishers/`: `NAME.pem` (PKCS#8, mode 0600) and `NAME.json`
/// (`{"id": HEX, "origin": "generated"|"imported"}`).
///
/// `origin` matters for forks: a key generated here has never signed anything elsewhere, so the local log is
/// complete; an imported key may have a log elsewhere, so publishing with it first needs the log brought up to
/// date (from the network, once nodes sync) or an explicit `--assume-log-current`.
public struct PublisherKeys: Sendable {
    public let directory: String

    public init(home: Home) { directory = home.keysPath + "/publishers" }

    public struct Entry: Sendable, Encodable {
        public let name: String
        public let id: String
        public let origin: String
    }

    public static func validate(name: String) throws {
        let ok =
            !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x5f
            }
        guard ok else { throw HomeError("a key name is 1-64 of a-z 0-9 - _; got \"\(name)\"") }
    }

    func pemPath(_ name: String) -> String { "\(directory)/\(name).pem" }
    func metaPath(_ name: String) -> String { "\(directory)/\(name).json" }

    /// Stores a key under `name`; refuses to overwrite an existing one.
    public func save(_ key: PublisherKey, name: String, origin: String) throws {
        try Self.validate(name: name)
        try Home.makeDirectory(directory, mode: 0o700)
        guard access(pemPath(name), F_OK) != 0 else { throw HomeError("a key named \"\(name)\" already exists") }
        try Home.writeFileAtomically(pemPath(name), Array(key.pem.utf8) + [0x0a], mode: 0o600)
        let meta = "{\"id\":\"\(key.id)\",\"origin\":\"\(origin)\"}\n"
        try Home.writeFileAtomically(metaPath(name), Array(meta.utf8), mode: 0o644)
    }

    /// Loads a key, refusing a key file that others can read.
    public func load(_ name: String) throws -> PublisherKey {
        try Self.validate(name: name)
        var st = stat()
        guard stat(pemPath(name), &st) == 0 else {
            throw HomeError("no publisher key named \"\(name)\"; `alexandria keys generate \(name)` or `keys import`")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw HomeError(
                "\(pemPath(name)) can be read by other users (mode \(String(st.st_mode & 0o777, radix: 8))); "
                    + "run `chmod 600 \(pemPath(name))` first")
        }
        guard let bytes = try Home.readFile(pemPath(name), limit: 16 << 10) else {
            throw HomeError("cannot read the key")
        }
        return try PublisherKey(pem: String(decoding: bytes, as: UTF8.self))
    }

    public func list() throws -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return try names.filter { $0.hasSuffix(".pem") }.sorted().map { file in
            let name = String(file.dropLast(4))
            let meta = try Home.readFile(metaPath(name), limit: 4096).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let id = try load(name).id.description
            let origin = meta.contains("\"imported\"") ? "imported" : "generated"
            return Entry(name: name, id: id, origin: origin)
        }
    }

    /// The local key whose publisher id is `id`, if any.
    public func named(forID id: PublisherID) throws -> (String, PublisherKey)? {
        for entry in try list() where entry.id == id.description { return (entry.name, try load(entry.name)) }
        return nil
    }

    public func origin(_ name: String) -> String {
        let meta = (try? Home.readFile(metaPath(name), limit: 4096)).flatMap { $0 }.map {
            String(decoding: $0, as: UTF8.self)
        }
        return meta?.contains("\"imported\"") == true ? "imported" : "generated"
    }

    /// Marks an imported key's log as brought up to date, so later publishes need no flag.
    public func markSynced(_ name: String) throws {
        let key = try load(name)
        let meta = "{\"id\":\"\(key.id)\",\"origin\":\"generated\",\"synced\":true}\n"
        try Home.writeFileAtomically(metaPath(name), Array(meta.utf8), mode: 0o644)
    }
}

extension Home {
    public var catalogPath: String { path + "/catalog.sqlite" }
    public var publisherKeys: PublisherKeys { PublisherKeys(home: self) }
}
