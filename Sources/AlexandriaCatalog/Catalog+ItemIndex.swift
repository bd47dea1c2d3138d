import AlexandriaCore
import AlexandriaGossip
import AlexandriaStore

/// The catalog's item ids in memory (`ItemIndex`), kept in step with the `items` table so an anti-entropy round reads
/// no row and hashes no id: O(log n) per range instead of reading and hashing the whole set every second
/// (Protocol/scale.md, "anti-entropy CPU").
///
/// How it stays exact:
/// - this connection's own inserts and deletes (gossip, the mirror, replaced statements, a compromise notice's
///   removals) are recorded by TEMP triggers into `temp.item_changes` inside the same transaction (a rollback takes
///   the record back with it), and applied in order at the next `itemIndex()`;
/// - another connection's commit (a CLI process on the same home) changes `PRAGMA data_version`, and the index is
///   read again from the table.
/// Guarded by the catalog's lock.
final class ItemIndexCache: @unchecked Sendable {
    var index: ItemIndex?
    var dataVersion = -1
    /// nil: not tried yet; false: the triggers could not be made (the index is read from the table every time).
    var tracking: Bool?
}

extension Catalog {
    /// Every item id held, as an index for reconciliation. O(changes since the last call) when only this connection
    /// wrote; a full read of the ids after another connection's commit.
    public func itemIndex() throws -> ItemIndex {
        try locked {
            let cache = itemIndexCache
            if cache.tracking == nil {
                do {
                    try db.execute(
                        """
                        CREATE TEMP TABLE IF NOT EXISTS item_changes (id BLOB NOT NULL, added INTEGER NOT NULL);
                        CREATE TEMP TRIGGER IF NOT EXISTS item_added AFTER INSERT ON main.items
                            BEGIN INSERT INTO item_changes (id, added) VALUES (new.id, 1); END;
                        CREATE TEMP TRIGGER IF NOT EXISTS item_removed AFTER DELETE ON main.items
                            BEGIN INSERT INTO item_changes (id, added) VALUES (old.id, 0); END;
                        """)
                    cache.tracking = true
                } catch {
                    cache.tracking = false
                }
            }
            guard cache.tracking == true else { return ItemIndex(sorted: try itemIDs()) }
            let version = scalar("PRAGMA data_version")
            if cache.index == nil || version != cache.dataVersion {
                try db.execute("DELETE FROM temp.item_changes")
                let fresh = ItemIndex(sorted: try itemIDs())
                cache.index = fresh
                cache.dataVersion = version
                return fresh
            }
            let stmt = try db.statement("SELECT id, added FROM temp.item_changes ORDER BY rowid")
            var changes: [(ContentHash, Bool)] = []
            while try stmt.step() {
                if let id = ContentHash(bytes: stmt.blob(0)) { changes.append((id, stmt.int(1) == 1)) }
            }
            stmt.reset()
            guard !changes.isEmpty, var index = cache.index else { return cache.index ?? ItemIndex() }
            cache.index = nil  // released while changed, so the update does not copy the blocks
            // In order, a run of additions or removals at a time (an id may be removed and added again).
            var start = 0
            while start < changes.count {
                var end = start
                while end < changes.count && changes[end].1 == changes[start].1 { end += 1 }
                let ids = changes[start..<end].map(\.0)
                if changes[start].1 { index.insert(ids) } else { index.remove(ids) }
                start = end
            }
            try db.execute("DELETE FROM temp.item_changes")
            cache.index = index
            return index
        }
    }
}
