import AlexandriaCore

#if canImport(Glibc)
    import Glibc
#endif

extension ContentStore {
    /// The index's rows checked against the pack records they were made from, for `verify`. SQLite's
    /// `integrity_check` sees a damaged page structure, not a byte flipped inside a value, and such a flip can change
    /// a row. Every row kind is covered, here or elsewhere:
    /// - `files`: the recipe record at (`recipe_pack`, `recipe_offset`) must be a recipe for that address with that
    ///   sequence, and its size, Merkle root, chunker and chunk list must equal the row's (here);
    /// - `removals`: the record at (`pack`, `offset`) must be a removal of that address with that sequence (here);
    /// - `chunks`: every chunk is read where its row says and hashed against its id (`verify`'s scrub);
    /// - `packs`: each `committed_size` against the pack file on disk (`packDrift`);
    /// - `meta.next_sequence`: against the sequences of the records past the index's view (`packDrift`);
    /// - `linked_files`: a wrong path makes its chunks fail the scrub (read as missing, never as wrong bytes).
    /// A row that does not match means the index, not the packs, is wrong: `verify --repair` rebuilds it.
    public func rowProblems() throws(StoreError) -> [String] {
        try withReader { (db) throws(StoreError) -> [String] in
            var out: [String] = []
            // Through the store's own read path, so a pack that lives in an object store (`RemotePacks`) is
            // checked like a local one.
            func record(pack: Int, offset: Int, extra: Int) -> (PackRecordHeader, [UInt8])? {
                var head = [UInt8](repeating: 0, count: PackRecordHeader.size)
                guard
                    let n = try? head.withUnsafeMutableBytes({ (b) throws(StoreError) -> Int in
                        try readPackBytes(pack: pack, at: offset, into: b)
                    }),
                    n == PackRecordHeader.size,
                    let header = head.withUnsafeBytes({ PackRecordHeader(parsing: $0) }),
                    header.kind != .chunk, Int(header.storedLength) <= extra
                else { return nil }
                var payload = [UInt8](repeating: 0, count: Int(header.storedLength))
                if payload.isEmpty { return (header, payload) }
                guard
                    let m = try? payload.withUnsafeMutableBytes({ (b) throws(StoreError) -> Int in
                        try readPackBytes(pack: pack, at: offset + PackRecordHeader.size, into: b)
                    }),
                    m == payload.count
                else { return nil }
                return (header, payload)
            }
            let files = try db.statement(
                """
                SELECT address, size, merkle_root, chunker, chunk_count, chunk_list, sequence, recipe_pack,
                    recipe_offset
                FROM files ORDER BY address
                """)
            var badFiles: [String] = []
            while try files.step() {
                let addressBytes = files.blob(0)
                let name = ContentHash(bytes: addressBytes)?.description ?? "a file row with a damaged address"
                guard let address = ContentHash(bytes: addressBytes),
                    let (header, payload) = record(
                        pack: files.int(7), offset: files.int(8), extra: Int(StoreLimits.maxRecipeBytes)),
                    header.kind == .recipe, header.id == address, Int(header.sequence) == files.int(6),
                    let (recipe, root) = payload.withUnsafeBytes({ RecipeCodec.decode($0, address: address) }),
                    Int(recipe.size) == files.int(1), root.bytes == files.blob(2),
                    recipe.chunker.description == files.text(3), recipe.chunks.count == files.int(4),
                    ChunkList.encode(recipe.chunks) == files.blob(5)
                else {
                    badFiles.append(name)
                    continue
                }
            }
            files.reset()
            if !badFiles.isEmpty {
                out.append(
                    "\(badFiles.count) file row(s) of the index do not match their recipe records in the packs "
                        + "(\(badFiles.prefix(3).joined(separator: ", ")))")
            }
            let removals = try db.statement("SELECT address, sequence, pack, offset FROM removals")
            var badRemovals = 0
            while try removals.step() {
                guard let address = ContentHash(bytes: removals.blob(0)),
                    let (header, _) = record(pack: removals.int(2), offset: removals.int(3), extra: 0),
                    header.kind == .removal, header.id == address, Int(header.sequence) == removals.int(1)
                else {
                    badRemovals += 1
                    continue
                }
            }
            removals.reset()
            if badRemovals > 0 {
                out.append("\(badRemovals) removal row(s) of the index do not match their records in the packs")
            }
            return out
        }
    }
}
