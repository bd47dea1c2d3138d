import Foundation

extension ContentStore {
    /// Compresses one sealed pack whose chunks were never offered to the compressor, for a daemon with nothing else
    /// to do (`Mirror`, `[mirror] idle_compression`). Nil when no pack qualifies.
    ///
    /// Unlike `collectGarbage`, it deletes nothing a writer may still need: it takes only a sealed, local pack (not
    /// one whose bytes live in an object store) in which every chunk row is referenced, so a chunk a concurrent fetch
    /// stored but has not yet registered (refs 0) is never in a pack it rewrites. The rewrite is `PackRewriter`'s, the
    /// same as GC's: every chunk is verified before it is copied (a damaged one is left behind and flagged), rows move
    /// to the new pack in one transaction, and the old pack's row and file go only after that commit. One pack per
    /// call, under the store's writer lock, so the caller paces the work and CLI writers wait at most one pack; on one
    /// thread, so that pacing by its wall time bounds its CPU time too.
    ///
    /// A store whose sealed packs go to an object store is never compressed on idle: there every sealed local pack
    /// is waiting for its upload, which runs outside the writer lock (in the node, or in any command on the home), so
    /// rewriting one could race the upload and leave an object no index row names; and a pack already in the bucket
    /// would have to be read back and uploaded again. `gc` compresses those packs (then uploads and cleans up).
    public func compressOneIdlePack() throws(StoreError) -> GCReport? {
        guard packs.remote == nil else { return nil }
        return try asWriter { (db) throws(StoreError) -> GCReport? in
            let remote = Self.remotePacks(db)
            let candidates = try db.statement(
                """
                SELECT p.id FROM packs p
                WHERE p.sealed = 1 AND p.compressed = 0 AND p.committed_size > 0 AND p.live_bytes > 0
                  AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack = p.id AND c.refs <= 0)
                ORDER BY p.id
                """)
            var pack: Int?
            while try candidates.step() {
                let id = candidates.int(0)
                if remote[id] == nil && POSIX.exists(packs.path(id)) {
                    pack = id
                    break
                }
            }
            candidates.reset()
            guard let pack else { return nil }
            var report = GCReport()
            report.bytesBefore = try Self.packBytes(db)
            // One chunk at a time: the caller paces by the wall time this takes, which bounds the CPU it uses only
            // while the work runs on one thread.
            let rewriter = try PackRewriter(store: self, db: db, compress: true, parallelism: 1)
            do throws(StoreError) {
                try rewriter.rewrite(packs: [pack])
            } catch {
                rewriter.rollBack()
                throw error
            }
            report.packsRewritten = 1
            report.chunksCompressed = rewriter.chunksCompressed
            report.bytesOfferedToCompressor = rewriter.bytesOffered
            report.compressSeconds = rewriter.compressSeconds
            try db.transaction { () throws(StoreError) in
                let drop = try db.statement("DELETE FROM packs WHERE id = ?")
                drop.bind(.int(pack))
                try drop.run()
            }
            packs.forget(pack)
            unlink(packs.path(pack))
            report.packsRemoved = 1
            report.bytesAfter = try Self.packBytes(db)
            return report
        }
    }
}
