import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import Crypto

extension Catalog {
    static let compromiseSchema = """
        -- Version 4: compromise notices (item kind 9) are read on every log entry and manifest offered; a partial
        -- index finds the few there are without scanning every item.
        CREATE INDEX items_compromise ON items (seq) WHERE kind = 9;
        """

    /// Version 3 → 4: the index of compromise notices.
    func migrateToCompromiseIndex() throws {
        try locked { try db.execute(Self.compromiseSchema) }
    }

    /// The compromise notices this node holds for `publisher` (one, once `addCompromiseNotice` has run; a catalog
    /// written by another version may hold more), verified against its log, smallest size first. Notices are held
    /// only as items (kind `compromise`, through the partial index of migration 4).
    public func compromiseNotices(_ publisher: PublisherID) throws -> [SignedCompromiseNotice] {
        let bodies = try locked {
            // The literal 9 lets SQLite use the partial index.
            let stmt = try db.statement("SELECT body FROM items WHERE kind = 9 ORDER BY seq")
            var out: [[UInt8]] = []
            while try stmt.step() { out.append(stmt.blob(0)) }
            return out
        }
        let mine = bodies.compactMap { body -> DSSEEnvelope? in
            guard let envelope = try? DSSEEnvelope(json: body),
                let n = try? CompromiseNotice(payload: envelope.payload), n.publisher == publisher
            else { return nil }
            return envelope
        }
        guard !mine.isEmpty, let log = try log(publisher) else { return [] }
        return
            mine
            .compactMap { try? SignedCompromiseNotice(envelope: $0, log: log) }
            .sorted { $0.notice.size < $1.notice.size }
    }

    /// The size at which `publisher`'s log is frozen here: the smallest size of any notice held (the earliest
    /// freeze wins, so a thief's later notice can never lift it). Nil when no notice is held.
    public func frozenSize(_ publisher: PublisherID) throws -> Int? {
        try compromiseNotices(publisher).first?.notice.size
    }

    /// Throws `frozen` when a notice held here freezes `publisher`'s log at or before `index`.
    func checkNotFrozen(_ publisher: PublisherID, index: Int, what: String) throws {
        if let size = try frozenSize(publisher), index >= size {
            throw ManifestError(
                .frozen,
                "\(what) is at log index \(index), but publisher \(publisher.short)'s key was reported compromised "
                    + "and its log is frozen at size \(size)")
        }
    }

    /// Notices whose root at their size disagrees with this node's log: evidence that the log forked before the
    /// freeze. Each line names the size and both roots.
    public func compromiseForks(_ publisher: PublisherID) throws -> [String] {
        guard let log = try log(publisher) else { return [] }
        return try compromiseNotices(publisher).compactMap { s in
            guard s.notice.size <= log.size else { return nil }
            let mine = MerkleTree.root(log.leaves.prefix(s.notice.size))
            return mine == s.notice.root
                ? nil
                : "the compromise notice's root at size \(s.notice.size) is \(s.notice.root), this node's log has "
                    + "\(mine): the log forked before the freeze"
        }
    }

    /// Verifies a compromise notice and keeps it if it wins: this node holds one notice per publisher, the one with
    /// the smallest size (ties: the smallest item id), so every node converges on the same one and no one can make a
    /// node hold more. Returns false, storing nothing, when a held notice already wins over it. Throws `unknownKey`
    /// when the publisher's log is not known here and `notFound` when the notice freezes at a size this node's log has
    /// not reached (the caller waits for it). Items of this publisher past the freeze are no longer offered to peers
    /// (their rows stay, so `audit` can flag the releases); nothing is deleted from the log.
    @discardableResult
    public func addCompromiseNotice(_ envelope: DSSEEnvelope) throws -> Bool {
        let notice = try CompromiseNotice(payload: envelope.payload)
        guard let log = try log(notice.publisher) else {
            throw ManifestError(.unknownKey, "unknown publisher \(notice.publisher.short)")
        }
        guard notice.size <= log.size else {
            throw ManifestError(.notFound, "a notice at size \(notice.size) for a log of \(log.size)")
        }
        let signed = try SignedCompromiseNotice(envelope: envelope, log: log)
        let item = CatalogItem(kind: .compromise, body: signed.envelope.json)
        func rank(_ n: SignedCompromiseNotice) -> (Int, String) {
            (n.notice.size, CatalogItem(kind: .compromise, body: n.envelope.json).id.hex)
        }
        return try locked {
            try db.execute("BEGIN IMMEDIATE")
            do {
                let held = try compromiseNotices(notice.publisher)
                if let best = held.first, rank(best) <= rank(signed) {
                    try db.execute("COMMIT")
                    return false
                }
                let delete = try db.statement("DELETE FROM items WHERE id = ?")
                for old in held {
                    delete.reset()
                    try delete.bind(.blob(CatalogItem(kind: .compromise, body: old.envelope.json).id.bytes)).run()
                }
                try record(item)
                try withdrawItems(publisher: notice.publisher, from: notice.size)
                try db.execute("COMMIT")
                return true
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Stops offering the log entries at index `size` and later, the manifests they bind and the checkpoints that
    /// cover them, as gossip items.
    private func withdrawItems(publisher: PublisherID, from size: Int) throws {
        var ids: [ContentHash] = []
        let entries = try db.statement("SELECT envelope FROM log_entries WHERE publisher = ? AND idx >= ?")
            .bind(.text(publisher.description), .int(size))
        while try entries.step() { ids.append(CatalogItem(kind: .logEntry, body: entries.blob(0)).id) }
        entries.reset()
        let rows = try db.statement("SELECT envelope FROM manifests WHERE publisher = ?")
            .bind(.text(publisher.description))
        while try rows.step() {
            let body = rows.blob(0)
            if let envelope = try? DSSEEnvelope(json: body), let m = try? Manifest(payload: envelope.payload),
                m.logIndex >= size
            {
                ids.append(CatalogItem(kind: .manifest, body: body).id)
            }
        }
        rows.reset()
        let notes = try db.statement("SELECT note FROM checkpoints WHERE publisher = ? AND size > ?")
            .bind(.text(publisher.description), .int(size))
        while try notes.step() { ids.append(CatalogItem(kind: .checkpoint, body: Array(notes.text(0).utf8)).id) }
        notes.reset()
        let delete = try db.statement("DELETE FROM items WHERE id = ?")
        for id in ids {
            delete.reset()
            try delete.bind(.blob(id.bytes)).run()
        }
    }
}
