import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import Crypto
import Foundation

extension Catalog {
    static let gossipSchema = """
        -- Version 2: gossip (Protocol/gossip-v1.md).
        -- Every item this node holds and passes on, by id (SHA-256 of kind byte || body). seq orders them by arrival,
        -- so a daemon can pick up what a CLI process on the same home added. A newer availability or demand statement
        -- replaces the older one with the same `replaces` key (the older row is deleted).
        CREATE TABLE items (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            id          BLOB NOT NULL UNIQUE,
            kind        INTEGER NOT NULL,
            body        BLOB NOT NULL,
            added_ms    INTEGER NOT NULL,
            replaces    TEXT
        ) STRICT;
        CREATE INDEX items_by_replaces ON items (replaces);
        -- Witness cosignatures of checkpoints, verified (C2SP cosignature/v1).
        CREATE TABLE cosignatures (
            origin      TEXT NOT NULL,
            size        INTEGER NOT NULL,
            root        BLOB NOT NULL,
            witness     BLOB NOT NULL,
            timestamp   INTEGER NOT NULL,
            PRIMARY KEY (origin, size, root, witness)
        ) STRICT, WITHOUT ROWID;
        -- The newest availability statement of each node about each manifest.
        CREATE TABLE availability (
            node        BLOB NOT NULL,
            manifest    TEXT NOT NULL,
            holds       INTEGER NOT NULL,
            ts_ms       INTEGER NOT NULL,
            PRIMARY KEY (node, manifest)
        ) STRICT, WITHOUT ROWID;
        -- The newest demand report of each node, one row per release it counted.
        CREATE TABLE demand (
            node        BLOB NOT NULL,
            manifest    TEXT NOT NULL,
            fetches     INTEGER NOT NULL,
            ts_ms       INTEGER NOT NULL,
            PRIMARY KEY (node, manifest)
        ) STRICT, WITHOUT ROWID;
        -- This node's own demand: fetches of each release it served or made, per minute.
        CREATE TABLE local_demand (
            manifest    TEXT NOT NULL,
            minute      INTEGER NOT NULL,
            fetches     INTEGER NOT NULL,
            PRIMARY KEY (manifest, minute)
        ) STRICT, WITHOUT ROWID;
        -- Releases this node keeps whatever its budget says (`alexandria pin`).
        CREATE TABLE pins (
            manifest    TEXT PRIMARY KEY,
            pinned_at   INTEGER NOT NULL
        ) STRICT;
        """

    /// Version 1 → 2: adds the gossip tables and records everything already held as items.
    /// Migration step 1 -> 2: the gossip tables, and every fact already stored recorded as an item. Runs inside the
    /// step's transaction (`Catalog.migrate(step:)`).
    func migrateToGossip() throws {
        try locked {
            try db.execute(Self.gossipSchema)
            for spki in try column("SELECT spki FROM publishers") {
                try record(CatalogItem(kind: .publisherKey, body: spki))
            }
            for e in try column("SELECT envelope FROM log_entries ORDER BY publisher, idx") {
                try record(CatalogItem(kind: .logEntry, body: e))
            }
            for m in try column("SELECT envelope FROM manifests") { try record(CatalogItem(kind: .manifest, body: m)) }
            let notes = try db.statement("SELECT note FROM checkpoints ORDER BY publisher, size")
            while try notes.step() { try record(CatalogItem(kind: .checkpoint, body: Array(notes.text(0).utf8))) }
            for p in try column("SELECT proof FROM equivocations") {
                try record(CatalogItem(kind: .equivocation, body: p))
            }
        }
    }

    func column(_ sql: String) throws -> [[UInt8]] {
        let stmt = try db.statement(sql)
        var out: [[UInt8]] = []
        while try stmt.step() { out.append(stmt.blob(0)) }
        return out
    }

    /// Adds an item row (idempotent by id).
    func record(_ item: CatalogItem, replaces: String? = nil) throws {
        try locked {
            try db.statement(
                "INSERT OR IGNORE INTO items (id, kind, body, added_ms, replaces) VALUES (?, ?, ?, ?, ?)"
            ).bind(
                .blob(item.id.bytes), .int(Int(item.kind.rawValue)), .blob(item.body), .int(Self.nowMillis),
                replaces.map { .text($0) } ?? .null
            ).run()
        }
    }

    static var nowMillis: Int { Int(Date().timeIntervalSince1970 * 1000) }

    // MARK: - Items

    /// Every item id this node holds, ascending (the set that reconciliation compares).
    public func itemIDs() throws -> [ContentHash] {
        try locked {
            let stmt = try db.statement("SELECT id FROM items ORDER BY id")
            var out: [ContentHash] = []
            while try stmt.step() { out.append(ContentHash(bytes: stmt.blob(0))!) }
            return out
        }
    }

    public var itemCount: Int { scalar("SELECT count(*) FROM items") }

    /// One integer from a query, 0 if it fails.
    func scalar(_ sql: String) -> Int {
        (try? locked {
            let stmt = try db.statement(sql)
            _ = try stmt.step()
            defer { stmt.reset() }
            return stmt.int(0)
        }) ?? 0
    }

    /// The items with these ids that this node holds, in dependency order (kind, then arrival).
    public func items(_ ids: [ContentHash]) throws -> [CatalogItem] {
        var rows: [(Int, Int, CatalogItem)] = []
        try locked {
            let stmt = try db.statement("SELECT kind, body, seq FROM items WHERE id = ?")
            for id in ids {
                stmt.reset()
                _ = stmt.bind(.blob(id.bytes))
                if try stmt.step(), let kind = CatalogItem.Kind(rawValue: UInt8(stmt.int(0))) {
                    rows.append((Int(kind.rawValue), stmt.int(2), CatalogItem(kind: kind, body: stmt.blob(1))))
                }
            }
            stmt.reset()
        }
        return rows.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2)
    }

    /// Items that arrived after `seq`, with the newest seq (for a daemon that polls for local additions).
    public func items(after seq: Int, limit: Int = 1024) throws -> (items: [CatalogItem], last: Int) {
        try locked {
            let stmt = try db.statement("SELECT seq, kind, body FROM items WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(.int(seq), .int(limit))
            var out: [CatalogItem] = []
            var last = seq
            while try stmt.step() {
                last = stmt.int(0)
                if let kind = CatalogItem.Kind(rawValue: UInt8(stmt.int(1))) {
                    out.append(CatalogItem(kind: kind, body: stmt.blob(2)))
                }
            }
            return (out, last)
        }
    }

    public var lastItemSeq: Int { scalar("SELECT coalesce(max(seq), 0) FROM items") }

    /// When this node first stored the item (milliseconds since 1970), or nil.
    public func itemArrival(_ id: ContentHash) throws -> Int? {
        try locked {
            let stmt = try db.statement("SELECT added_ms FROM items WHERE id = ?").bind(.blob(id.bytes))
            guard try stmt.step() else { return nil }
            defer { stmt.reset() }
            return stmt.int(0)
        }
    }

    public func hasItem(_ id: ContentHash) throws -> Bool { try itemArrival(id) != nil }

    /// What happened to an item offered by a peer.
    public enum ItemOutcome: Equatable, Sendable {
        /// Verified and stored; `derived` are new items this node made from it (an equivocation proof).
        case added(derived: [CatalogItem])
        /// Already held (or an equal statement is).
        case duplicate
        /// It depends on something this node does not hold yet (a publisher key, earlier log entries, the manifest a
        /// release is bound to). Keep it and offer it again later.
        case pending(String)
        /// An older statement than the one held; dropped, not a fault.
        case stale
        /// Signed by the publisher but conflicting with what was seen first: the proof was stored and is `derived`.
        case conflict(derived: [CatalogItem])
    }

    /// Largest clock skew accepted on a node's statement (availability, demand).
    public static let maxFutureMillis = 10 * 60 * 1000

    /// Verifies an item and stores it. Throws `ManifestError` or `GossipError` for an item that is malformed or badly
    /// signed: the peer that sent it is at fault.
    public func accept(_ item: CatalogItem) throws -> ItemOutcome {
        guard item.body.count <= CatalogItem.maxBodyBytes else {
            throw GossipError(.tooLarge, "an item of \(item.body.count) bytes")
        }
        if try hasItem(item.id) { return .duplicate }
        switch item.kind {
        case .publisherKey:
            let key: P256.Signing.PublicKey
            do { key = try P256.Signing.PublicKey(derRepresentation: item.body) } catch {
                throw GossipError(.malformed, "not a P-256 SPKI")
            }
            guard Array(key.derRepresentation) == item.body else {
                throw GossipError(.malformed, "the key is not in canonical SPKI DER")
            }
            try register(publisherKey: key)
            return .added(derived: [])
        case .logEntry:
            let envelope = try DSSEEnvelope(json: item.body)
            let entry = try LogEntry(payload: envelope.payload)
            guard let log = try log(entry.publisher) else { return .pending("publisher \(entry.publisher.short)") }
            try checkNotFrozen(entry.publisher, index: entry.index, what: "this \(entry.kind.rawValue) entry")
            if entry.index > log.size { return .pending("entry \(entry.index) of a log of \(log.size)") }
            return try outcome(addLogEntry(envelope), item)
        case .manifest:
            let envelope = try DSSEEnvelope(json: item.body)
            let statement = try Manifest(payload: envelope.payload)
            guard try publisherKey(statement.publisher) != nil else {
                return .pending("publisher \(statement.publisher.short)")
            }
            try checkNotFrozen(
                statement.publisher, index: statement.logIndex, what: "the manifest \(statement.release)")
            if let bound = try binding(publisher: statement.publisher, release: statement.release.local),
                try manifest(id: bound) == nil, bound != ContentHash.of(envelope.payload)
            {
                return .pending("the manifest \(statement.release) is bound to")
            }
            return try outcome(addManifest(envelope), item)
        case .checkpoint:
            guard let text = String(validating: item.body, as: UTF8.self) else {
                throw GossipError(.malformed, "a checkpoint is UTF-8")
            }
            let note = try SignedNote(parsing: text)
            let checkpoint = try Checkpoint(text: note.text)
            guard let publisher = checkpoint.publisher else {
                throw GossipError(.malformed, "not a publisher checkpoint: \(checkpoint.origin)")
            }
            guard let log = try log(publisher) else { return .pending("publisher \(publisher.short)") }
            try checkNotFrozen(publisher, index: checkpoint.size - 1, what: "a checkpoint of size \(checkpoint.size)")
            if checkpoint.size > log.size {
                return .pending("a checkpoint of size \(checkpoint.size) for a log of \(log.size)")
            }
            if try checkpoints(publisher).contains(where: { $0.checkpoint.size > checkpoint.size }) {
                // An older checkpoint than one held: consistent ones add nothing; an inconsistent one is a fork.
                // Held as an item so that reconciliation converges; the newer checkpoint stays the one in force.
                let (_, matches) = try log.verify(note)
                if matches == true {
                    try record(item)
                    return .added(derived: [])
                }
            }
            return try outcome(addCheckpoint(note), item)
        case .equivocation:
            let proof = try EquivocationProof(json: item.body)
            _ = try store(proof)
            return .added(derived: [])
        case .cosignature:
            let cosignature = try Cosignature(body: item.body)
            let checkpoint = try Checkpoint(text: cosignature.checkpointText)
            guard checkpoint.publisher != nil else {
                throw GossipError(.malformed, "a cosignature of something that is not a publisher checkpoint")
            }
            try locked {
                try db.statement(
                    "INSERT OR IGNORE INTO cosignatures (origin, size, root, witness, timestamp) VALUES (?, ?, ?, ?, ?)"
                ).bind(
                    .text(checkpoint.origin), .int(checkpoint.size), .blob(checkpoint.root.bytes),
                    .blob(cosignature.witnessKey), .int(Int(cosignature.timestamp))
                ).run()
                try record(item)
            }
            return .added(derived: [])
        case .availability:
            let statement = try AvailabilityStatement(body: item.body)
            guard Int(statement.timestampMillis) <= Self.nowMillis + Self.maxFutureMillis else {
                throw GossipError(.stale, "an availability statement from the future")
            }
            return try replacing(
                item, key: "a:" + Hex.encode(statement.nodeKey) + statement.manifest.hex,
                timestamp: statement.timestampMillis
            ) {
                try db.statement(
                    "INSERT OR REPLACE INTO availability (node, manifest, holds, ts_ms) VALUES (?, ?, ?, ?)"
                ).bind(
                    .blob(statement.nodeKey), .text(statement.manifest.description), .int(statement.holds ? 1 : 0),
                    .int(Int(statement.timestampMillis))
                ).run()
            }
        case .compromise:
            let envelope = try DSSEEnvelope(json: item.body)
            let notice = try CompromiseNotice(payload: envelope.payload)
            guard let log = try log(notice.publisher) else { return .pending("publisher \(notice.publisher.short)") }
            if notice.size > log.size { return .pending("a notice at size \(notice.size) for a log of \(log.size)") }
            // A notice that a held one already beats (a larger or equal size) adds nothing: dropped, not a fault.
            return try addCompromiseNotice(envelope) ? .added(derived: []) : .stale
        case .demand:
            let report = try DemandReport(body: item.body)
            guard Int(report.timestampMillis) <= Self.nowMillis + Self.maxFutureMillis else {
                throw GossipError(.stale, "a demand report from the future")
            }
            return try replacing(item, key: "d:" + Hex.encode(report.nodeKey), timestamp: report.timestampMillis) {
                try db.statement("DELETE FROM demand WHERE node = ?").bind(.blob(report.nodeKey)).run()
                let insert = try db.statement(
                    "INSERT OR REPLACE INTO demand (node, manifest, fetches, ts_ms) VALUES (?, ?, ?, ?)")
                for c in report.counts {
                    insert.reset()
                    try insert.bind(
                        .blob(report.nodeKey), .text(c.manifest.description), .int(Int(c.fetches)),
                        .int(Int(report.timestampMillis))
                    ).run()
                }
            }
        }
    }

    /// A conflicting item is held too, as evidence (it is inside the proof anyway), so that every node's item set
    /// converges; the catalog's bindings and log keep what was seen first.
    private func outcome(_ o: Outcome, _ item: CatalogItem) throws -> ItemOutcome {
        switch o {
        case .added: return .added(derived: [])
        case .duplicate:
            try record(item)
            return .duplicate
        case .equivocation(let id):
            try record(item)
            let proof = try locked { () -> [UInt8]? in
                let stmt = try db.statement("SELECT proof FROM equivocations WHERE id = ?").bind(.text(id.description))
                guard try stmt.step() else { return nil }
                defer { stmt.reset() }
                return stmt.blob(0)
            }
            return .conflict(derived: proof.map { [CatalogItem(kind: .equivocation, body: $0)] } ?? [])
        }
    }

    /// Stores a statement that replaces an older one with the same key, unless a newer one is held.
    private func replacing(
        _ item: CatalogItem, key: String, timestamp: UInt64, apply: () throws -> Void
    ) throws -> ItemOutcome {
        try locked {
            let existing = try db.statement("SELECT body, kind FROM items WHERE replaces = ?").bind(.text(key))
            var newest: UInt64?
            while try existing.step() {
                let body = existing.blob(0)
                switch item.kind {
                case .availability:
                    newest = max(newest ?? 0, (try? AvailabilityStatement(body: body))?.timestampMillis ?? 0)
                default: newest = max(newest ?? 0, (try? DemandReport(body: body))?.timestampMillis ?? 0)
                }
            }
            existing.reset()
            if let newest, newest >= timestamp { return .stale }
            try db.execute("BEGIN IMMEDIATE")
            do {
                try db.statement("DELETE FROM items WHERE replaces = ?").bind(.text(key)).run()
                try apply()
                try record(item, replaces: key)
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
            return .added(derived: [])
        }
    }

    // MARK: - Witnesses, holders, demand, pins

    /// Distinct witnesses that cosigned the checkpoint `(origin, size, root)`, earliest first.
    public func cosignatures(
        origin: String, size: Int, root: ContentHash
    ) throws -> [(
        witness: [UInt8], timestamp: UInt64
    )] {
        try locked {
            let stmt = try db.statement(
                "SELECT witness, timestamp FROM cosignatures WHERE origin = ? AND size = ? AND root = ? ORDER BY timestamp"
            ).bind(.text(origin), .int(size), .blob(root.bytes))
            var out: [([UInt8], UInt64)] = []
            while try stmt.step() { out.append((stmt.blob(0), UInt64(stmt.int(1)))) }
            return out
        }
    }

    /// Witnesses of a published manifest: nodes that cosigned a checkpoint of its publisher's log (as this node
    /// holds it) that includes the manifest's publish entry, earliest first.
    public func witnesses(of signed: SignedManifest) throws -> [(witness: [UInt8], timestamp: UInt64, size: Int)] {
        guard let log = try log(signed.manifest.publisher) else { return [] }
        let index = signed.manifest.logIndex
        guard index < log.size, log.entries[index].entry.manifest == signed.id else {
            return try witnessesOffLog(signed)
        }
        var best: [Data: (UInt64, Int)] = [:]
        let origin = Checkpoint.origin(for: signed.manifest.publisher)
        // Only the sizes some witness cosigned need a root (each root hashes the whole prefix).
        let sizes = try locked { () -> [Int] in
            let stmt = try db.statement(
                "SELECT DISTINCT size FROM cosignatures WHERE origin = ? AND size > ? AND size <= ?"
            )
            .bind(.text(origin), .int(index), .int(log.size))
            var out: [Int] = []
            while try stmt.step() { out.append(stmt.int(0)) }
            return out
        }
        for size in sizes {
            let root = MerkleTree.root(Array(log.leaves[0..<size]))
            for c in try cosignatures(origin: origin, size: size, root: root) {
                let k = Data(c.witness)
                if best[k] == nil || best[k]!.0 > c.timestamp { best[k] = (c.timestamp, size) }
            }
        }
        return best.map { (Array($0.key), $0.value.0, $0.value.1) }.sorted { $0.timestamp < $1.timestamp }
    }

    /// Witnesses of a manifest whose publish entry is not in this node's log (a fork this node did not follow): the
    /// checkpoint of size `logIndex + 1` built from this node's log prefix and the conflicting entry from a proof.
    func witnessesOffLog(_ signed: SignedManifest) throws -> [(witness: [UInt8], timestamp: UInt64, size: Int)] {
        guard let log = try log(signed.manifest.publisher), signed.manifest.logIndex <= log.size else { return [] }
        let index = signed.manifest.logIndex
        for (proof, _) in try equivocations(publisher: signed.manifest.publisher) where proof.kind == .entries {
            for bytes in [proof.first, proof.second] {
                guard let envelope = try? DSSEEnvelope(json: bytes),
                    let entry = try? LogEntry(payload: envelope.payload),
                    entry.index == index, entry.manifest == signed.id, entry.kind == .publish
                else { continue }
                let root = MerkleTree.root(Array(log.leaves[0..<index]) + [entry.leafHash])
                return try cosignatures(
                    origin: Checkpoint.origin(for: signed.manifest.publisher), size: index + 1, root: root
                ).map { ($0.witness, $0.timestamp, index + 1) }
            }
        }
        return []
    }

    /// Nodes whose newest statement, made within the last `maxAgeMillis`, says they hold every chunk of `manifest`.
    public func holders(of manifest: ContentHash, maxAgeMillis: Int = Int.max / 2) throws -> [[UInt8]] {
        try locked {
            let stmt = try db.statement(
                "SELECT node FROM availability WHERE manifest = ? AND holds = 1 AND ts_ms >= ? ORDER BY node"
            ).bind(.text(manifest.description), .int(Self.nowMillis - maxAgeMillis))
            var out: [[UInt8]] = []
            while try stmt.step() { out.append(stmt.blob(0)) }
            return out
        }
    }

    /// This node's newest statement about each manifest: whether it said it holds it, and when.
    public func statements(of node: [UInt8]) throws -> [ContentHash: (holds: Bool, timestampMillis: Int)] {
        try locked {
            let stmt = try db.statement("SELECT manifest, holds, ts_ms FROM availability WHERE node = ?")
                .bind(.blob(node))
            var out: [ContentHash: (Bool, Int)] = [:]
            while try stmt.step() {
                if let h = ContentHash(canonical: stmt.text(0)) { out[h] = (stmt.int(1) == 1, stmt.int(2)) }
            }
            return out
        }
    }

    /// Every manifest id this node knows, with its publisher and release (for replication), oldest first.
    public func allManifests() throws -> [(id: ContentHash, publisher: PublisherID, release: String)] {
        try locked {
            let stmt = try db.statement("SELECT id, publisher, release FROM manifests ORDER BY first_seen, id")
            var out: [(ContentHash, PublisherID, String)] = []
            while try stmt.step() {
                if let id = ContentHash(canonical: stmt.text(0)), let p = PublisherID(hex: stmt.text(1)) {
                    out.append((id, p, stmt.text(2)))
                }
            }
            return out
        }
    }

    /// Counts one fetch of a release by this node (served or made).
    public func countDemand(_ manifest: ContentHash, fetches: Int = 1) throws {
        let minute = Int(Date().timeIntervalSince1970 / 60)
        try locked {
            try db.statement(
                """
                INSERT INTO local_demand (manifest, minute, fetches) VALUES (?, ?, ?)
                ON CONFLICT (manifest, minute) DO UPDATE SET fetches = fetches + excluded.fetches
                """
            ).bind(.text(manifest.description), .int(minute), .int(fetches)).run()
        }
    }

    /// This node's fetches per release over the last `minutes`.
    public func localDemand(minutes: Int) throws -> [(manifest: ContentHash, fetches: Int)] {
        let since = Int(Date().timeIntervalSince1970 / 60) - minutes
        return try locked {
            try db.statement("DELETE FROM local_demand WHERE minute < ?").bind(.int(since - 1440)).run()
            let stmt = try db.statement(
                "SELECT manifest, sum(fetches) FROM local_demand WHERE minute >= ? GROUP BY manifest ORDER BY 2 DESC"
            ).bind(.int(since))
            var out: [(ContentHash, Int)] = []
            while try stmt.step() { if let h = ContentHash(canonical: stmt.text(0)) { out.append((h, stmt.int(1))) } }
            return out
        }
    }

    /// Demand per release across the network: the sum of every node's newest report.
    public func networkDemand() throws -> [ContentHash: Int] {
        try locked {
            let stmt = try db.statement("SELECT manifest, sum(fetches) FROM demand GROUP BY manifest")
            var out: [ContentHash: Int] = [:]
            while try stmt.step() { if let h = ContentHash(canonical: stmt.text(0)) { out[h] = stmt.int(1) } }
            return out
        }
    }

    public func pin(_ manifest: ContentHash) throws {
        try locked {
            try db.statement("INSERT OR IGNORE INTO pins (manifest, pinned_at) VALUES (?, ?)")
                .bind(.text(manifest.description), .int(Int(Date().timeIntervalSince1970))).run()
        }
    }

    public func unpin(_ manifest: ContentHash) throws {
        try locked {
            try db.statement("DELETE FROM pins WHERE manifest = ?").bind(.text(manifest.description)).run()
        }
    }

    public func pins() throws -> Set<ContentHash> {
        try locked {
            let stmt = try db.statement("SELECT manifest FROM pins")
            var out: Set<ContentHash> = []
            while try stmt.step() { if let h = ContentHash(canonical: stmt.text(0)) { out.insert(h) } }
            return out
        }
    }
}

// MARK: - Which binding stands

extension Catalog {
    /// A manifest this node holds as a release, or (failing that) one it holds only as evidence inside an
    /// equivocation proof, verified against the proof's key.
    public func manifestOrEvidence(id: ContentHash) throws -> SignedManifest? {
        if let m = try manifest(id: id) { return m }
        for publisher in try publishers() {
            if let m = try evidenceManifests(publisher: publisher).first(where: { $0.id == id }) { return m }
        }
        return nil
    }

    /// Whether any equivocation proof names `publisher` (one indexed query; no proof is parsed).
    public func hasEquivocations(publisher: PublisherID) throws -> Bool {
        try locked {
            let stmt = try db.statement("SELECT 1 FROM equivocations WHERE publisher = ? LIMIT 1")
                .bind(.text(publisher.description))
            defer { stmt.reset() }
            return try stmt.step()
        }
    }

    /// Both manifests of every manifest-equivocation proof of `publisher`, each verified against the proof's key
    /// (which `equivocations` has checked signs both).
    func evidenceManifests(publisher: PublisherID) throws -> [SignedManifest] {
        var out: [SignedManifest] = []
        let log = try log(publisher)
        for (proof, _) in try equivocations(publisher: publisher) where proof.kind == .manifests {
            guard let key = try? P256.Signing.PublicKey(derRepresentation: proof.publisherKey) else { continue }
            for bytes in [proof.first, proof.second] {
                guard let envelope = try? DSSEEnvelope(json: bytes) else { continue }
                if let m = try? SignedManifest(envelope: envelope, publicKey: key) {
                    out.append(m)
                } else if let log, let m = try? SignedManifest(envelope: envelope, log: log) {
                    out.append(m)
                }
            }
        }
        return out
    }

    /// The conflicting manifests for one release that this node knows (its first binding first).
    public func contenders(publisher: PublisherID, release: String) throws -> [SignedManifest] {
        guard let first = try binding(publisher: publisher, release: release),
            let firstManifest = try manifestOrEvidence(id: first)
        else { return [] }
        var out = [firstManifest]
        for m in try evidenceManifests(publisher: publisher)
        where m.manifest.release.local == release && m.manifest.publisher == publisher
            && !out.contains(where: { $0.id == m.id })
        {
            out.append(m)
        }
        return out
    }

    /// Seconds a binding must have been held, by this node's own clock, before it learned of a conflicting
    /// contender, to count as held without this node's own cosignature. A node that learned both within this window
    /// (a fresh node syncing after the fork) saw no order it can stand by.
    public static let holdSeconds = 10

    /// The binding this node holds for a release: its first-seen binding, if this node committed to it before it
    /// learned of a conflict: it cosigned a checkpoint that includes it (a node witnesses only what it holds), or it
    /// had bound it at least `holdSeconds` before the first proof of a conflict over the release arrived. Nil when it
    /// learned the contenders together.
    public func heldBinding(publisher: PublisherID, release: String) throws -> ContentHash? {
        guard let first = try binding(publisher: publisher, release: release) else { return nil }
        if let me = witnessKey, let signed = try manifestOrEvidence(id: first),
            try witnesses(of: signed).contains(where: { $0.witness == me })
        {
            return first
        }
        let (boundAt, conflictAt) = try locked { () -> (Int, Int?) in
            let b = try db.statement("SELECT first_seen FROM bindings WHERE publisher = ? AND release = ?")
                .bind(.text(publisher.description), .text(release))
            let boundAt = try b.step() ? b.int(0) : Int.max
            b.reset()
            let c = try db.statement("SELECT proof, detected_at FROM equivocations WHERE publisher = ?")
                .bind(.text(publisher.description))
            var earliest: Int?
            while try c.step() {
                guard let proof = try? EquivocationProof(json: c.blob(0)), Self.concerns(proof, release: release)
                else { continue }
                earliest = min(earliest ?? Int.max, c.int(1))
            }
            return (boundAt, earliest)
        }
        guard let conflictAt else { return first }
        return conflictAt - boundAt >= Self.holdSeconds ? first : nil
    }

    /// Whether an equivocation proof is about `release` (two manifests for it, or two log entries naming it).
    static func concerns(_ proof: EquivocationProof, release: String) -> Bool {
        for bytes in [proof.first, proof.second] {
            guard let envelope = try? DSSEEnvelope(json: bytes) else { continue }
            switch proof.kind {
            case .manifests:
                if let m = try? Manifest(payload: envelope.payload), m.release.local == release { return true }
            case .entries:
                if let e = try? LogEntry(payload: envelope.payload), e.release == release { return true }
            default: continue
            }
        }
        return false
    }

    /// How this node settles a release: its contenders with their witnesses, and the decision of `ForkChoice` under
    /// this catalog's trust policy.
    public func settlement(
        publisher: PublisherID, release: String
    ) throws -> (contenders: [ForkChoice.Contender], decision: ForkChoice.Decision) {
        let signed = try contenders(publisher: publisher, release: release)
        let contenders = try signed.map { c in
            var keys: [[UInt8]] = []
            for w in try witnesses(of: c) where !keys.contains(w.witness) { keys.append(w.witness) }
            return ForkChoice.Contender(id: c.id, witnesses: keys)
        }
        let held = contenders.count > 1 ? try heldBinding(publisher: publisher, release: release) : nil
        return (contenders, ForkChoice.decide(contenders: contenders, held: held, policy: trust))
    }

    /// The manifest a release resolves to (see `ForkChoice`); nil when the name is unknown or refused.
    public func settledBinding(publisher: PublisherID, release: String) throws -> ContentHash? {
        let contenders = try contenders(publisher: publisher, release: release)
        guard contenders.count > 1 else { return try binding(publisher: publisher, release: release) }
        return try settlement(publisher: publisher, release: release).decision.winner
    }
}
