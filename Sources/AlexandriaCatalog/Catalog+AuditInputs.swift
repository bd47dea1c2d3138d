import AlexandriaCore
import AlexandriaManifest

/// What an offline audit (`Registry.audit`) reads from the catalog about a set of publishers and manifests, in a form
/// that is cheap to take and to compare: a page that shows an audit may reuse one made when these were equal.
///
/// Each count is of a table the catalog only ever adds to (log entries, checkpoints, equivocation proofs, witness
/// cosignatures), so an equal count means the same rows. Compromise notices can be replaced by a smaller one, so they
/// are compared by the newest item's sequence number, which every replacement raises. The trust policy is fixed for
/// the catalog's lifetime. Bindings are not here: the caller resolves the name again for every view.
public struct AuditInputs: Sendable, Equatable {
    /// Per publisher (64 hex): log entries, checkpoints, equivocation proofs, and cosignatures of its log's checkpoints.
    public let publishers: [String: [Int]]
    /// Per manifest id: whether the catalog holds it (for lineage parents an audit could not find).
    public let known: [String: Bool]
    /// The sequence number of the newest compromise notice item (of any publisher; 0 with none).
    public let compromiseSequence: Int
}

extension Catalog {
    /// Takes `AuditInputs` for `publishers` and `manifests`: one indexed statement per publisher, one point lookup per
    /// manifest, no signature checked and no log replayed.
    public func auditInputs(publishers: Set<PublisherID>, manifests: Set<ContentHash>) throws -> AuditInputs {
        try locked {
            var counts: [String: [Int]] = [:]
            let stmt = try db.statement(
                """
                SELECT (SELECT count(*) FROM log_entries WHERE publisher = ?1),
                       (SELECT count(*) FROM checkpoints WHERE publisher = ?1),
                       (SELECT count(*) FROM equivocations WHERE publisher = ?1),
                       (SELECT count(*) FROM cosignatures WHERE origin = ?2)
                """)
            for publisher in publishers {
                stmt.reset()
                stmt.bind(.text(publisher.description), .text(Checkpoint.origin(for: publisher)))
                guard try stmt.step() else { continue }
                counts[publisher.description] = (0..<4).map { stmt.int($0) }
            }
            stmt.reset()
            var known: [String: Bool] = [:]
            let lookup = try db.statement("SELECT 1 FROM manifests WHERE id = ?")
            for id in manifests {
                lookup.reset()
                lookup.bind(.text(id.description))
                known[id.description] = try lookup.step()
            }
            lookup.reset()
            // The literal 9 lets SQLite use the partial index over compromise notices.
            let compromise = try db.statement("SELECT coalesce(max(seq), 0) FROM items WHERE kind = 9")
            _ = try compromise.step()
            defer { compromise.reset() }
            return AuditInputs(publishers: counts, known: known, compromiseSequence: compromise.int(0))
        }
    }
}
