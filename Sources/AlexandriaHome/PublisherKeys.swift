import AlexandriaCatalog
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
        /// The publisher this key signs for (releases are named by it). Its own fingerprint unless a rotation handed
        /// an existing publisher's log to it.
        public let id: String
        /// The key's own fingerprint.
        public let keyID: String
        public let origin: String
        /// A key that handed its log to another; it signs nothing more.
        public let retired: Bool
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
    public func save(_ key: PublisherKey, name: String, origin: String, publisher: PublisherID? = nil) throws {
        try Self.validate(name: name)
        try Home.makeDirectory(directory, mode: 0o700)
        guard access(pemPath(name), F_OK) != 0 else { throw HomeError("a key named \"\(name)\" already exists") }
        try Home.writeFileAtomically(pemPath(name), Array(key.pem.utf8) + [0x0a], mode: 0o600)
        try writeMeta(
            name, ["id": key.id.description, "publisher": (publisher ?? key.id).description, "origin": origin])
    }

    func meta(_ name: String) -> [String: Any] {
        guard let bytes = (try? Home.readFile(metaPath(name), limit: 4096)).flatMap({ $0 }),
            let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        else { return [:] }
        return object
    }

    func writeMeta(_ name: String, _ meta: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys])
        try Home.writeFileAtomically(metaPath(name), Array(data) + [0x0a], mode: 0o644)
    }

    /// Records that `name` now signs for `publisher` (after a rotation to it).
    public func assign(_ name: String, to publisher: PublisherID) throws {
        var m = meta(name)
        m["publisher"] = publisher.description
        try writeMeta(name, m)
    }

    /// Marks a key retired: it handed its log to another key.
    public func retire(_ name: String) throws {
        var m = meta(name)
        m["retired"] = true
        try writeMeta(name, m)
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

    /// What is wrong with each key's files, one line per key with the command that fixes it (for `verify`): a key
    /// that does not load, or a settings file (`NAME.json`) that is not the JSON object `alexandria` writes. A
    /// missing settings file is the defaults (a generated key), not damage. A `.json` without its key is ignored.
    public func problems() -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [String] = []
        for file in names.sorted() where file.hasSuffix(".json") && !names.contains(file.dropLast(5) + ".pem") {
            out.append(
                "the publisher key \(directory)/\(file.dropLast(5)).pem is missing (its settings file is there): "
                    + "restore it from a backup; without it this home cannot publish for that publisher")
        }
        for file in names.sorted() where file.hasSuffix(".pem") {
            let name = String(file.dropLast(4))
            do { _ = try load(name) } catch {
                out.append(
                    "the publisher key \(pemPath(name)) cannot be loaded (\(error)): restore it from a backup; "
                        + "without it this home cannot publish for that publisher (releases already out stay valid)")
                continue
            }
            guard access(metaPath(name), F_OK) == 0 else { continue }
            let bytes = (try? Home.readFile(metaPath(name), limit: 4096)).flatMap { $0 }
            let object = bytes.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
            let valid =
                object.map { m in
                    (m["publisher"] == nil || (m["publisher"] as? String).flatMap(PublisherID.init(hex:)) != nil)
                        && (m["origin"] == nil || ["generated", "imported"].contains(m["origin"] as? String ?? ""))
                        && (m["synced"] == nil || m["synced"] is Bool) && (m["retired"] == nil || m["retired"] is Bool)
                } ?? false
            if !valid {
                out.append(
                    "the publisher key's settings \(metaPath(name)) are damaged: restore the file from a backup, or "
                        + "remove it and run `alexandria sync --key \(name)` before publishing with \(name) again")
            }
        }
        return out
    }

    public func list() throws -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return try names.filter { $0.hasSuffix(".pem") }.sorted().map { file in
            let name = String(file.dropLast(4))
            let m = meta(name)
            let own = try load(name).id.description
            return Entry(
                name: name, id: m["publisher"] as? String ?? own, keyID: own,
                origin: m["origin"] as? String ?? "generated",
                retired: m["retired"] as? Bool ?? false)
        }
    }

    /// The local key that currently signs for `id` (not retired), with its name.
    public func named(forID id: PublisherID) throws -> (String, PublisherKey)? {
        for entry in try list() where entry.id == id.description && !entry.retired {
            return (entry.name, try load(entry.name))
        }
        return nil
    }

    /// The publisher a key signs for.
    public func publisher(of name: String) throws -> PublisherID {
        let m = meta(name)
        if let text = m["publisher"] as? String, let id = PublisherID(hex: text) { return id }
        return try load(name).id
    }

    public func isRetired(_ name: String) -> Bool { meta(name)["retired"] as? Bool ?? false }

    public func origin(_ name: String) -> String { meta(name)["origin"] as? String ?? "generated" }

    /// Marks an imported key's log as brought up to date, so later publishes need no flag.
    public func markSynced(_ name: String) throws {
        var m = meta(name)
        m["origin"] = "generated"
        m["synced"] = true
        try writeMeta(name, m)
    }

    /// Marks a key's log as not known to be current here (a fork was seen), so `publish` refuses it again until a
    /// sync succeeds or the user says otherwise.
    public func markUnsynced(_ name: String) throws {
        var m = meta(name)
        m["origin"] = "imported"
        m["synced"] = false
        try writeMeta(name, m)
    }
}

extension Home {
    public var catalogPath: String { path + "/catalog.sqlite" }
    /// What the home remembers about its catalog outside it (`CatalogMark`).
    public var catalogMarkPath: String { path + "/catalog.mark" }

    /// Opens the catalog with the trust policy from the config and this node's key as its own witness key.
    public func openCatalog() throws -> Catalog {
        let witness = (try? nodeKey()).map { Array($0.publicKey.rawRepresentation) }
        return try Catalog(
            path: catalogPath, trust: config().trust, witnessKey: witness, markPath: catalogMarkPath)
    }
    public var publisherKeys: PublisherKeys { PublisherKeys(home: self) }
}
