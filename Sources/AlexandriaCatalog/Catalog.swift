import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import Crypto
import Foundation

/// The metadata a node knows: publishers, their logs, manifests, checkpoints, release bindings and equivocation
/// proofs. Every item is verified before it is stored (signature, log order, consistency); nothing unverified is
/// ever kept except inside an equivocation proof, whose parts are themselves verified.
///
/// `<home>/catalog.sqlite`, WAL mode. Small, replicated everywhere by gossip (a later issue); chunks are not here.
public final class Catalog: @unchecked Sendable {
    let db: SQLiteConnection
    private let lock = NSRecursiveLock()
    /// The witnesses this node trusts to settle conflicts (`[trust]` in config.toml).
    public let trust: TrustPolicy
    /// This node's own witness (node) key: a binding it cosigned is one it holds.
    public let witnessKey: [UInt8]?
    /// Where this catalog's `CatalogMark` lives (`<home>/catalog.mark`); nil for a catalog without one.
    public let markPath: String?
    /// Publisher logs already replayed (`log(_:)`).
    let replayed = ReplayedLogs()
    /// The item ids in memory for reconciliation (`itemIndex()`).
    let itemIndexCache = ItemIndexCache()

    static let schema = """
        -- Version 1.
        -- Publishers by id (hex SHA-256 of the SPKI DER of their first key).
        CREATE TABLE publishers (
            id          TEXT PRIMARY KEY,
            spki        BLOB NOT NULL,
            first_seen  INTEGER NOT NULL
        ) STRICT;
        -- Log entries as signed envelopes, in index order with no gaps (checked on insert).
        CREATE TABLE log_entries (
            publisher   TEXT NOT NULL,
            idx         INTEGER NOT NULL,
            envelope    BLOB NOT NULL,
            kind        TEXT NOT NULL,
            release     TEXT,
            manifest    TEXT,
            PRIMARY KEY (publisher, idx)
        ) STRICT, WITHOUT ROWID;
        -- Manifests as signed envelopes, by id (sha256: of the payload bytes).
        CREATE TABLE manifests (
            id          TEXT PRIMARY KEY,
            publisher   TEXT NOT NULL,
            release     TEXT NOT NULL,
            envelope    BLOB NOT NULL,
            first_seen  INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX manifests_by_release ON manifests (publisher, release);
        -- The first binding of publisher/name@version that this node saw. Never updated, never deleted.
        CREATE TABLE bindings (
            publisher   TEXT NOT NULL,
            release     TEXT NOT NULL,
            manifest    TEXT NOT NULL,
            first_seen  INTEGER NOT NULL,
            PRIMARY KEY (publisher, release)
        ) STRICT, WITHOUT ROWID;
        -- Signed checkpoints (C2SP signed notes), one per size.
        CREATE TABLE checkpoints (
            publisher   TEXT NOT NULL,
            size        INTEGER NOT NULL,
            root        BLOB NOT NULL,
            note        TEXT NOT NULL,
            PRIMARY KEY (publisher, size)
        ) STRICT, WITHOUT ROWID;
        -- Equivocation proofs (self-contained; see EquivocationProof).
        CREATE TABLE equivocations (
            id          TEXT PRIMARY KEY,
            publisher   TEXT NOT NULL,
            subject     TEXT NOT NULL,
            proof       BLOB NOT NULL,
            detected_at INTEGER NOT NULL
        ) STRICT;
        """

    /// The catalog's schema as numbered steps: step `i` brings a catalog from version `i` to `i + 1`
    /// (`PRAGMA user_version`). Each step runs in one transaction together with its version bump, so a process
    /// killed at any point leaves the catalog at the old version or the new one, never between. Append new steps at
    /// the end; never edit or reorder a released one.
    static let migrations: [@Sendable (Catalog) throws -> Void] = [
        // 0 -> 1: publishers, logs, manifests, bindings, checkpoints, proofs.
        { try $0.db.execute(Catalog.schema) },
        // 1 -> 2: gossip items (every stored fact recorded as an item), cosignatures, availability, demand, pins.
        { try $0.migrateToGossip() },
        // 2 -> 3: the witness state (the newest checkpoint this node cosigned per origin, C2SP tlog-witness).
        { try $0.migrateToWitnessState() },
        // 3 -> 4: a partial index over compromise notices.
        { try $0.migrateToCompromiseIndex() },
    ]

    /// The newest schema version this build knows.
    static var currentVersion: Int { migrations.count }

    /// Opens (or creates) the catalog at `path`. With a `markPath`, a catalog that is not the one the mark remembers
    /// (missing, empty, another one, older: `CatalogMark`) is refused with a `.damaged` error before anything is
    /// written to it, and the mark is written again once the catalog is open.
    public init(
        path: String, trust: TrustPolicy = .firstSeen, witnessKey: [UInt8]? = nil, markPath: String? = nil
    ) throws {
        self.trust = trust
        self.witnessKey = witnessKey
        self.markPath = markPath
        let mark = try markPath.flatMap { try CatalogMark.read($0) }
        if let mark, !FileManager.default.fileExists(atPath: path) {
            throw CatalogError(
                "the catalog \(path) is missing, but this home had one (\(mark.items) item(s)); "
                    + CatalogMark.fixAdvice(path), code: .damaged)
        }
        db = try SQLiteConnection(path: path, readOnly: false, busyTimeoutMilliseconds: 10_000)
        if let mark, let problem = CatalogMark.problem(db, mark: mark, catalogPath: path) {
            throw CatalogError(problem, code: .damaged)
        }
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=FULL")
        let v = try Self.version(db)
        if v > Self.currentVersion {
            throw CatalogError(
                "the catalog \(path) is from a newer version (\(v)); this build knows up to \(Self.currentVersion). "
                    + "Upgrade alexandria")
        }
        for step in v..<Self.currentVersion { try migrate(step: step) }
        if markPath != nil {
            if try CatalogMark.observe(db) == nil {
                try db.execute("PRAGMA application_id = \(Int32.random(in: 1...Int32.max))")
            }
            try writeMark()
        }
    }

    deinit { checkpoint() }

    /// Rewrites `markPath` with what the catalog has committed now (its identity and high-water mark).
    public func writeMark() throws {
        guard let markPath else { return }
        let now: CatalogMark? = try locked { try CatalogMark.observe(db) }
        try now?.write(markPath)
    }

    /// What `PRAGMA integrity_check` says other than "ok" (empty for a sound catalog).
    public func integrityProblems() throws -> [String] {
        try locked {
            let check = try db.statement("PRAGMA integrity_check")
            var lines: [String] = []
            while try check.step() {
                if check.text(0) != "ok" { lines.append(check.text(0)) }
            }
            return lines
        }
    }

    /// Copies every commit from the WAL into `catalog.sqlite` itself (TRUNCATE), so that a copy of the home taken
    /// after a clean exit is whole. Runs from `deinit`; a long-lived owner (the daemon) calls it when it stops.
    public func checkpoint() {
        lock.lock()
        defer { lock.unlock() }
        db.checkpoint()
        try? writeMark()
    }

    static func version(_ db: SQLiteConnection) throws -> Int {
        let version = try db.statement("PRAGMA user_version")
        _ = try version.step()
        defer { version.reset() }
        return version.int(0)
    }

    /// Runs migration `step` and its version bump in one `BEGIN IMMEDIATE` transaction; skips it if another process
    /// applied it meanwhile.
    func migrate(step: Int) throws {
        try locked {
            try db.execute("BEGIN IMMEDIATE")
            do {
                if try Self.version(db) == step {
                    try Self.migrations[step](self)
                    try db.execute("PRAGMA user_version = \(step + 1)")
                }
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: - Publishers

    /// Registers a publisher by its first key. Idempotent.
    public func register(publisherKey key: P256.Signing.PublicKey) throws {
        let id = PublisherID(publicKey: key)
        try locked {
            try db.statement("INSERT OR IGNORE INTO publishers (id, spki, first_seen) VALUES (?, ?, ?)")
                .bind(
                    .text(id.description), .blob(Array(key.derRepresentation)), .int(Int(Date().timeIntervalSince1970))
                )
                .run()
            try record(CatalogItem(kind: .publisherKey, body: Array(key.derRepresentation)))
        }
    }

    public func publisherKey(_ id: PublisherID) throws -> P256.Signing.PublicKey? {
        try locked {
            let stmt = try db.statement("SELECT spki FROM publishers WHERE id = ?").bind(.text(id.description))
            guard try stmt.step() else { return nil }
            defer { stmt.reset() }
            return try P256.Signing.PublicKey(derRepresentation: stmt.blob(0))
        }
    }

    public func publishers() throws -> [PublisherID] {
        try locked {
            let stmt = try db.statement("SELECT id FROM publishers ORDER BY id")
            var out: [PublisherID] = []
            while try stmt.step() { if let id = PublisherID(hex: stmt.text(0)) { out.append(id) } }
            return out
        }
    }

    /// Publishers whose id starts with `prefix` (at least 8 hex digits).
    public func publishers(matching prefix: String) throws -> [PublisherID] {
        guard prefix.count >= 8 else { return [] }
        return try publishers().filter { $0.description.hasPrefix(prefix.lowercased()) }
    }

    // MARK: - Logs

    /// The publisher's log, replayed from the stored entries and checked again.
    public func log(_ publisher: PublisherID) throws -> PublisherLog? {
        guard let key = try publisherKey(publisher) else { return nil }
        let envelopes: [[UInt8]] = try locked {
            let stmt = try db.statement("SELECT envelope FROM log_entries WHERE publisher = ? ORDER BY idx")
                .bind(.text(publisher.description))
            var out: [[UInt8]] = []
            while try stmt.step() { out.append(stmt.blob(0)) }
            return out
        }
        return try replayed.replay(publisher, key: key, envelopes: envelopes)
    }

    /// What happened to an offered item.
    public enum Outcome: Equatable, Sendable {
        /// Stored.
        case added
        /// Already known, byte for byte.
        case duplicate
        /// It conflicts with what this node saw first; the proof was stored and the first binding stands.
        case equivocation(ContentHash)
    }

    /// Verifies and stores the next log entry of a publisher.
    @discardableResult
    public func addLogEntry(_ envelope: DSSEEnvelope) throws -> Outcome {
        let entry = try LogEntry(payload: envelope.payload)
        guard var log = try log(entry.publisher) else {
            throw ManifestError(.unknownKey, "unknown publisher \(entry.publisher.short); its key must be known first")
        }
        if entry.index < log.size {
            let existing = log.entries[entry.index]
            if existing.envelope.payload == envelope.payload { return .duplicate }
            // Same index, different signed content: a fork. Keep the first; store the proof if both verify.
            let signer = log.key(at: entry.index)
            _ = try SignedLogEntry(envelope: envelope, signer: signer)
            let proof = EquivocationProof(
                kind: .entries, publisherKey: signer, first: existing.envelope.json, second: envelope.json)
            return .equivocation(try store(proof))
        }
        try checkNotFrozen(entry.publisher, index: entry.index, what: "this \(entry.kind.rawValue) entry")
        let signed = try log.append(envelope)
        try locked {
            try db.statement(
                "INSERT INTO log_entries (publisher, idx, envelope, kind, release, manifest) VALUES (?, ?, ?, ?, ?, ?)"
            ).bind(
                .text(entry.publisher.description), .int(entry.index), .blob(envelope.json), .text(entry.kind.rawValue),
                signed.entry.release.map { .text($0) } ?? .null,
                signed.entry.manifest.map { .text($0.description) } ?? .null
            ).run()
            try record(CatalogItem(kind: .logEntry, body: envelope.json))
        }
        if entry.kind == .publish, let release = entry.release, let manifest = entry.manifest {
            try bind(publisher: entry.publisher, release: release, manifest: manifest)
        }
        return .added
    }

    /// Records the first binding of a release; a later, different one is ignored (the caller records the proof).
    func bind(publisher: PublisherID, release: String, manifest: ContentHash) throws {
        try locked {
            try db.statement(
                "INSERT OR IGNORE INTO bindings (publisher, release, manifest, first_seen) VALUES (?, ?, ?, ?)"
            ).bind(
                .text(publisher.description), .text(release), .text(manifest.description),
                .int(Int(Date().timeIntervalSince1970))
            ).run()
        }
    }

    // MARK: - Manifests

    /// Verifies and stores a manifest. A second, different manifest for a release that is already bound is not
    /// stored as a manifest: it becomes an equivocation proof, and the release keeps resolving to the first.
    @discardableResult
    public func addManifest(_ envelope: DSSEEnvelope) throws -> Outcome {
        let statement = try Manifest(payload: envelope.payload)
        guard let key = try publisherKey(statement.publisher) else {
            throw ManifestError(.unknownKey, "unknown publisher \(statement.publisher.short)")
        }
        // Only the key in force at the manifest's log position may sign it: a retired key binds nothing new.
        let publisherLog = try log(statement.publisher)
        let keys = publisherLog.map { [$0.key(at: statement.logIndex)] } ?? [key]
        var signed: SignedManifest?
        var lastError: Error?
        for k in keys.reversed() {
            do {
                signed = try SignedManifest(envelope: envelope, publicKey: k)
                break
            } catch { lastError = error }
        }
        // SignedManifest insists the signer's fingerprint is the publisher id; a rotated key signs with its own id,
        // so accept a rotated key's signature on the statement's publisher.
        if signed == nil {
            if let publisherLog { signed = try? SignedManifest(envelope: envelope, log: publisherLog) }
        }
        guard let signed else {
            throw lastError ?? ManifestError(.badSignature, "the manifest's signature does not verify")
        }
        let release = signed.manifest.release.local
        enum Step {
            case added, duplicate
            case conflict(ContentHash)
        }
        // The check and the first binding are one write transaction, whichever process (CLI or daemon) gets there
        // first: the other then sees the binding and its manifest becomes an equivocation proof.
        let step: Step = try writeTransaction {
            if let existing = try manifest(id: signed.id), existing.envelope.payload == envelope.payload {
                return .duplicate
            }
            try checkNotFrozen(
                statement.publisher, index: statement.logIndex, what: "the manifest \(statement.release)")
            if let bound = try binding(publisher: statement.publisher, release: release), bound != signed.id {
                return .conflict(bound)
            }
            try db.statement(
                "INSERT OR IGNORE INTO manifests (id, publisher, release, envelope, first_seen) VALUES (?, ?, ?, ?, ?)"
            ).bind(
                .text(signed.id.description), .text(statement.publisher.description), .text(release),
                .blob(envelope.json),
                .int(Int(Date().timeIntervalSince1970))
            ).run()
            try record(CatalogItem(kind: .manifest, body: envelope.json))
            try bind(publisher: statement.publisher, release: release, manifest: signed.id)
            return .added
        }
        switch step {
        case .added: return .added
        case .duplicate: return .duplicate
        case .conflict(let bound):
            let first = try manifest(id: bound)
            let signer =
                (publisherLog?.keys.map(\.key) ?? [key]).last { first?.envelope.isSigned(by: $0) ?? false } ?? key
            let proof = EquivocationProof(
                kind: .manifests, publisherKey: signer, first: first?.envelope.json ?? [], second: envelope.json)
            if first != nil { return .equivocation(try store(proof)) }
            throw ManifestError(.equivocation, "\(release) is already bound to \(bound); this manifest conflicts")
        }
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction (the write lock first, so what it reads cannot change before it
    /// writes), or inside the caller's transaction if one is open.
    func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        try locked {
            if db.inTransaction { return try body() }
            try db.execute("BEGIN IMMEDIATE")
            do {
                let result = try body()
                try db.execute("COMMIT")
                return result
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    public func manifest(id: ContentHash) throws -> SignedManifest? {
        let row: (String, [UInt8])? = try locked {
            let stmt = try db.statement("SELECT publisher, envelope FROM manifests WHERE id = ?").bind(
                .text(id.description))
            guard try stmt.step() else { return nil }
            defer { stmt.reset() }
            return (stmt.text(0), stmt.blob(1))
        }
        guard let (publisherText, bytes) = row, let publisher = PublisherID(hex: publisherText) else { return nil }
        let envelope = try DSSEEnvelope(json: bytes)
        guard let log = try log(publisher), let signed = try? SignedManifest(envelope: envelope, log: log) else {
            throw ManifestError(.badSignature, "the stored manifest \(id) no longer verifies")
        }
        return signed
    }

    /// The manifest a release resolves to: the first binding this node saw.
    public func binding(publisher: PublisherID, release: String) throws -> ContentHash? {
        try locked {
            let stmt = try db.statement("SELECT manifest FROM bindings WHERE publisher = ? AND release = ?")
                .bind(.text(publisher.description), .text(release))
            guard try stmt.step() else { return nil }
            defer { stmt.reset() }
            return ContentHash(canonical: stmt.text(0))
        }
    }

    /// Manifests that list a file with this address.
    public func manifests(containing file: ContentHash) throws -> [ContentHash] {
        let all: [(String, [UInt8])] = try locked {
            let stmt = try db.statement("SELECT id, envelope FROM manifests ORDER BY first_seen")
            var out: [(String, [UInt8])] = []
            while try stmt.step() { out.append((stmt.text(0), stmt.blob(1))) }
            return out
        }
        var out: [ContentHash] = []
        for (id, bytes) in all {
            guard let envelope = try? DSSEEnvelope(json: bytes), let m = try? Manifest(payload: envelope.payload) else {
                continue
            }
            if m.files.contains(where: { $0.sha256 == file }), let h = ContentHash(canonical: id) { out.append(h) }
        }
        return out
    }

    // MARK: - Checkpoints

    /// Verifies and stores a checkpoint. Refuses one smaller than the largest already seen (a rollback) unless it
    /// is already known; a second checkpoint of the same size with another root becomes an equivocation proof.
    @discardableResult
    public func addCheckpoint(_ note: SignedNote) throws -> Outcome {
        let parsed = try Checkpoint(text: note.text)
        guard let publisher = parsed.publisher, let log = try log(publisher) else {
            throw ManifestError(.unknownKey, "the checkpoint is for an unknown publisher (\(parsed.origin))")
        }
        let (checkpoint, matches) = try log.verify(note)
        let stored = try checkpoints(publisher)
        if let same = stored.first(where: { $0.checkpoint.size == checkpoint.size }) {
            if same.checkpoint.root == checkpoint.root { return .duplicate }
            let key = log.key(at: max(0, checkpoint.size - 1))
            let proof = EquivocationProof(
                kind: .checkpoints, publisherKey: key, first: Array(same.note.serialized.utf8),
                second: Array(note.serialized.utf8))
            return .equivocation(try store(proof))
        }
        if let largest = stored.map(\.checkpoint.size).max(), checkpoint.size < largest {
            throw ManifestError(
                .logInconsistent, "the checkpoint of size \(checkpoint.size) rolls back from \(largest), already seen")
        }
        if matches == false {
            throw ManifestError(
                .logInconsistent, "the checkpoint's root for size \(checkpoint.size) does not match the log's entries")
        }
        try locked {
            try db.statement("INSERT INTO checkpoints (publisher, size, root, note) VALUES (?, ?, ?, ?)")
                .bind(
                    .text(publisher.description), .int(checkpoint.size), .blob(checkpoint.root.bytes),
                    .text(note.serialized)
                )
                .run()
            try record(CatalogItem(kind: .checkpoint, body: Array(note.serialized.utf8)))
        }
        return .added
    }

    public func checkpoints(_ publisher: PublisherID) throws -> [(checkpoint: Checkpoint, note: SignedNote)] {
        let notes: [String] = try locked {
            let stmt = try db.statement("SELECT note FROM checkpoints WHERE publisher = ? ORDER BY size")
                .bind(.text(publisher.description))
            var out: [String] = []
            while try stmt.step() { out.append(stmt.text(0)) }
            return out
        }
        return try notes.map { text in
            let note = try SignedNote(parsing: text)
            return (try Checkpoint(text: note.text), note)
        }
    }

    // MARK: - Equivocations

    /// Verifies and stores a proof; returns its id.
    @discardableResult
    public func store(_ proof: EquivocationProof) throws -> ContentHash {
        let finding = try proof.verify()
        try locked {
            try db.statement(
                "INSERT OR IGNORE INTO equivocations (id, publisher, subject, proof, detected_at) VALUES (?, ?, ?, ?, ?)"
            ).bind(
                .text(proof.id.description), .text(finding.publisher.description), .text(finding.subject),
                .blob(proof.json),
                .int(Int(Date().timeIntervalSince1970))
            ).run()
            try record(CatalogItem(kind: .equivocation, body: proof.json))
        }
        return proof.id
    }

    public func equivocations(
        publisher: PublisherID
    ) throws -> [(proof: EquivocationProof, finding: EquivocationProof.Finding)] {
        let blobs: [[UInt8]] = try locked {
            let stmt = try db.statement("SELECT proof FROM equivocations WHERE publisher = ? ORDER BY detected_at")
                .bind(.text(publisher.description))
            var out: [[UInt8]] = []
            while try stmt.step() { out.append(stmt.blob(0)) }
            return out
        }
        return try blobs.map { b in
            let proof = try EquivocationProof(json: b)
            return (proof, try proof.verify())
        }
    }
}

/// The one error type of AlexandriaCatalog.
public struct CatalogError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case failed
        /// A release with conflicting manifests that nothing settles on this node (see `ForkChoice`).
        case contested
        /// The catalog is not the one this home committed (missing, empty, another one, older): see `CatalogMark`.
        case damaged
        /// Another process appended to the log while this one signed at its old end; nothing was stored.
        case logMoved
    }
    public let code: Code
    public let message: String
    public init(_ message: String, code: Code = .failed) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

extension Catalog {
    /// Stores a new publish (log entry, manifest, checkpoint) or notice (entry, checkpoint) in one transaction,
    /// so a crash leaves all of it or none.
    public func commit(entry: DSSEEnvelope, manifest: DSSEEnvelope?, checkpoint: SignedNote) throws {
        try locked {
            try db.execute("BEGIN IMMEDIATE")
            do {
                let e = try addLogEntry(entry)
                if let manifest {
                    guard case .added = try addManifest(manifest) else {
                        throw CatalogError("the new manifest conflicts with one already stored")
                    }
                }
                guard e == .added else { throw CatalogError("the log already has an entry at that index") }
                _ = try addCheckpoint(checkpoint)
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }
}
