import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import Crypto

extension Catalog {
    /// Every compromise notice this node holds for `publisher`, verified against its log, smallest size first.
    /// Notices are held only as items (kind `compromise`); there are few, so they are read from there.
    public func compromiseNotices(_ publisher: PublisherID) throws -> [SignedCompromiseNotice] {
        guard let log = try log(publisher) else { return [] }
        let bodies = try locked {
            let stmt = try db.statement("SELECT body FROM items WHERE kind = ? ORDER BY seq")
                .bind(.int(Int(CatalogItem.Kind.compromise.rawValue)))
            var out: [[UInt8]] = []
            while try stmt.step() { out.append(stmt.blob(0)) }
            return out
        }
        return
            bodies
            .compactMap { body in
                guard let envelope = try? DSSEEnvelope(json: body),
                    let n = try? CompromiseNotice(payload: envelope.payload), n.publisher == publisher
                else { return nil }
                return try? SignedCompromiseNotice(envelope: envelope, log: log)
            }
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

    /// Verifies and stores a compromise notice. Throws `unknownKey` when the publisher's log is not known here and
    /// `notFound` when the notice freezes at a size this node's log has not reached (the caller waits for it).
    /// Items of this publisher past the freeze are no longer offered to peers (their rows stay, so `audit` can flag
    /// the releases); nothing is deleted from the log.
    @discardableResult
    public func addCompromiseNotice(_ envelope: DSSEEnvelope) throws -> Outcome {
        let notice = try CompromiseNotice(payload: envelope.payload)
        guard let log = try log(notice.publisher) else {
            throw ManifestError(.unknownKey, "unknown publisher \(notice.publisher.short)")
        }
        guard notice.size <= log.size else {
            throw ManifestError(.notFound, "a notice at size \(notice.size) for a log of \(log.size)")
        }
        let signed = try SignedCompromiseNotice(envelope: envelope, log: log)
        let item = CatalogItem(kind: .compromise, body: signed.envelope.json)
        if try hasItem(item.id) { return .duplicate }
        try locked {
            try db.execute("BEGIN IMMEDIATE")
            do {
                try record(item)
                try withdrawItems(publisher: notice.publisher, from: try frozenSize(notice.publisher) ?? notice.size)
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
        return .added
    }

    /// Stops offering the log entries at index `size` and later, and the manifests they bind, as gossip items.
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
        let delete = try db.statement("DELETE FROM items WHERE id = ?")
        for id in ids {
            delete.reset()
            try delete.bind(.blob(id.bytes)).run()
        }
    }
}
