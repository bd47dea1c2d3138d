import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import Crypto
import Foundation

/// Witnessing as C2SP tlog-witness asks: a witness cosigns a checkpoint of an origin only if it is consistent with the
/// newest checkpoint of that origin it cosigned before, so an honest witness never puts its key on both sides of a
/// fork (Protocol/gossip-v1.md, "Witnesses").
extension Catalog {
    static let witnessStateSchema = """
        -- Version 3: the newest checkpoint this node cosigned, per origin (C2SP tlog-witness state). A cosignature is
        -- made only if its checkpoint is consistent with this one, and the row moves forward in the same transaction.
        CREATE TABLE witness_state (
            origin      TEXT PRIMARY KEY,
            size        INTEGER NOT NULL,
            root        BLOB NOT NULL
        ) STRICT;
        """

    /// Version 2 → 3, in one transaction: adds the witness state, seeded with the largest checkpoint per origin that
    /// this node's key already cosigned.
    func migrateToWitnessState() throws {
        try locked {
            try db.execute(Self.witnessStateSchema)
            if let me = witnessKey {
                let rows = try db.statement(
                    "SELECT origin, size, root FROM cosignatures WHERE witness = ? ORDER BY origin, size"
                ).bind(.blob(me))
                var newest: [String: (Int, [UInt8])] = [:]
                while try rows.step() { newest[rows.text(0)] = (rows.int(1), rows.blob(2)) }
                rows.reset()
                let insert = try db.statement("INSERT INTO witness_state (origin, size, root) VALUES (?, ?, ?)")
                for (origin, (size, root)) in newest {
                    insert.reset()
                    try insert.bind(.text(origin), .int(size), .blob(root)).run()
                }
            }
        }
    }

    /// Why a witness refuses to cosign, or nil if it may. Pure: the newest checkpoint it cosigned for the origin, the
    /// checkpoint asked for, and the leaves of the log the witness holds as its own.
    ///
    /// - The checkpoint's root must be the root of the witness's own log at that size (it never cosigns a log it
    ///   does not hold as its first-seen log).
    /// - Same size as before: same root. Smaller: refused (C2SP: an old checkpoint is not cosigned again).
    /// - Larger: an RFC 6962 consistency proof from the old checkpoint to the new one, computed from the witness's
    ///   own log, must verify.
    public static func witnessRefusal(
        previous: (size: Int, root: ContentHash)?, checkpoint: (size: Int, root: ContentHash), log: [ContentHash]
    ) -> String? {
        guard checkpoint.size >= 1, checkpoint.size <= log.count,
            MerkleTree.root(log.prefix(checkpoint.size)) == checkpoint.root
        else { return "the checkpoint is not of the log this node holds" }
        guard let previous else { return nil }
        if checkpoint.size == previous.size {
            return checkpoint.root == previous.root ? nil : "a different root at a size already cosigned"
        }
        if checkpoint.size < previous.size { return "older than the checkpoint of size \(previous.size) cosigned" }
        guard
            let proof = MerkleTree.consistencyProof(oldSize: previous.size, leaves: Array(log.prefix(checkpoint.size))),
            MerkleTree.verifyConsistency(
                oldSize: previous.size, oldRoot: previous.root, newSize: checkpoint.size, newRoot: checkpoint.root,
                proof: proof)
        else { return "not consistent with the checkpoint of size \(previous.size) cosigned before" }
        return nil
    }

    /// Cosigns `checkpoint` of `publisher`'s log with the node key, if `witnessRefusal` allows, and moves the witness
    /// state forward in the same transaction as the cosignature is stored. Returns the cosignature item, or throws
    /// `CatalogError` saying why it refused.
    public func cosign(
        _ checkpoint: Checkpoint, publisher: PublisherID, key: Curve25519.Signing.PrivateKey,
        timestamp: UInt64 = UInt64(Date().timeIntervalSince1970)
    ) throws -> CatalogItem {
        guard let log = try log(publisher) else { throw CatalogError("publisher \(publisher.short) is not known here") }
        return try locked {
            try db.execute("BEGIN IMMEDIATE")
            do {
                let stmt = try db.statement("SELECT size, root FROM witness_state WHERE origin = ?")
                    .bind(.text(checkpoint.origin))
                let previous: (size: Int, root: ContentHash)? =
                    try stmt.step() ? (stmt.int(0), ContentHash(bytes: stmt.blob(1))!) : nil
                stmt.reset()
                if let why = Self.witnessRefusal(
                    previous: previous, checkpoint: (checkpoint.size, checkpoint.root), log: log.leaves)
                {
                    throw CatalogError("refusing to cosign \(checkpoint.origin) at size \(checkpoint.size): \(why)")
                }
                let cosignature = try Cosignature.sign(checkpointText: checkpoint.text, key: key, timestamp: timestamp)
                try db.statement("INSERT OR REPLACE INTO witness_state (origin, size, root) VALUES (?, ?, ?)")
                    .bind(.text(checkpoint.origin), .int(checkpoint.size), .blob(checkpoint.root.bytes)).run()
                guard case .added = try accept(cosignature.item) else {
                    throw CatalogError("the cosignature was not stored")
                }
                try db.execute("COMMIT")
                return cosignature.item
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }
}
