import AlexandriaCore
import AlexandriaGossip
import AlexandriaStore

extension Catalog {
    /// A catalog item as it arrived here: what the status page lists as recent gossip.
    public struct ArrivedItem: Sendable {
        public let id: ContentHash
        public let kind: CatalogItem.Kind
        /// When this node stored it, milliseconds since 1970 (this node's clock).
        public let arrivedMillis: Int
        public let bytes: Int
    }

    /// The `limit` items stored most recently (from gossip, or made here), newest first. Bodies are not read.
    public func recentItems(limit: Int) throws -> [ArrivedItem] {
        try locked {
            let stmt = try db.statement(
                "SELECT id, kind, added_ms, length(body) FROM items ORDER BY seq DESC LIMIT ?"
            ).bind(.int(max(0, limit)))
            var out: [ArrivedItem] = []
            while try stmt.step() {
                guard let id = ContentHash(bytes: stmt.blob(0)),
                    let kind = CatalogItem.Kind(rawValue: UInt8(stmt.int(1)))
                else { continue }
                out.append(ArrivedItem(id: id, kind: kind, arrivedMillis: stmt.int(2), bytes: stmt.int(3)))
            }
            return out
        }
    }
}
