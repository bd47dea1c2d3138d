import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaObjectStore
import AlexandriaPeer
import AlexandriaStore
import AlexandriaStoreS3
import ArgumentParser
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scrub the store: read and hash every chunk; exit 1 if anything is damaged or missing.")

    @OptionGroup var options: HomeOptions

    @Flag(help: "Rebuild the index from the pack files first (for a damaged or lost index.sqlite).")
    var repair = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    struct Problem: Encodable {
        let chunk: String
        let pack: Int
        let offset: Int
        let message: String
    }

    struct Report: Encodable {
        let chunksChecked: Int
        let bytesChecked: UInt64
        let problems: [Problem]
        let incompleteFiles: [String]
        let indexProblems: [String]
        /// Records of a write that did not finish (not damage), if any.
        let unfinishedWrite: String?
        /// The command that fixes what was found.
        let fix: String?
        let ok: Bool
    }

    func run() throws {
        let home = options.resolved
        if repair {
            guard home.isInitialized else {
                throw HomeError("no Alexandria store at \(home.storePath); nothing to repair")
            }
            // An index SQLite can read and whose packs are all there only lacks records: index them again from the
            // packs and keep what only the index knows (fetched files held by reference). Anything worse: rebuild.
            if let s3 = try home.objectStore() {
                // The bucket is the truth for sealed packs: rebuild from it and the local packs, every time.
                try ObjectStorage.checkWriter(home)
                let rebuilt = try s3.rebuild(directory: home.storePath)
                if !json {
                    Output.line(
                        "rebuilt the index from \(rebuilt.packsScanned) pack(s) (local and in bucket "
                            + "\(s3.settings.bucket)): \(rebuilt.files) file(s), \(rebuilt.chunks) chunk(s); "
                            + "\(rebuilt.damagedChunks) damaged chunk record(s) left out")
                }
            } else if let store = try? home.openStore(catchingUp: false),
                (try? store.indexProblems())?.isEmpty == true, (try? store.rowProblems())?.isEmpty == true,
                let drift = try? store.packDrift(), drift.damagedPacks.isEmpty
            {
                let done = try store.catchUpWithPacks()
                if !json && !done.isCurrent {
                    Output.line(
                        "indexed again from the packs: \(done.lostFiles.count) file(s), \(done.lostRemovals) "
                            + "removal(s), \(done.chunkRecords) chunk(s)")
                }
            } else {
                let rebuilt = try ContentStore.rebuildIndex(directory: home.storePath)
                if !json {
                    Output.line(
                        "rebuilt the index from \(rebuilt.packsScanned) pack(s): \(rebuilt.files) file(s), "
                            + "\(rebuilt.chunks) chunk(s), \(rebuilt.linkedChunks) linked chunk(s) kept; "
                            + "\(rebuilt.damagedChunks) damaged chunk record(s) left out")
                }
            }
        }
        if repair, let done = try Self.repairCatalog(home), !json { Output.line(done) }
        let store = try home.openStore(catchingUp: false)
        // A fetch killed between renaming its output and recording it left links to the partial: not damage.
        try Fetcher.recoverInterruptedFetches(store)
        let drift = try store.packDrift()
        var bar: ProgressBar?
        var report = try store.verify { done, total in
            if bar == nil { bar = ProgressBar(label: "verify", total: total) }
            bar?.update(done)
        }
        bar?.finish()
        if let advice = drift.advice { report.indexProblems.append(advice) }
        let rows = try store.rowProblems()
        if !rows.isEmpty {
            report.indexProblems.append(
                rows.joined(separator: "; ")
                    + ": the index is wrong, not the packs; run `alexandria verify --repair` to rebuild it from them")
        }
        let storeNeedsRepair = !report.indexProblems.isEmpty
        report.indexProblems += Self.homeProblems(home)
        let unfinished =
            drift.unfinishedWrite
            ? "the packs hold \(drift.lostFiles.count) file(s), \(drift.lostRemovals) removal(s), "
                + "\(drift.chunkRecords) chunk record(s) and \(drift.tornBytes) torn byte(s) of a write that did not "
                + "finish (one commit at most); the next open indexes the records and cuts the torn bytes (nothing "
                + "is lost)"
            : nil
        let fix = Self.advice(report, storeNeedsRepair: storeNeedsRepair)
        if json {
            try Output.json(
                Report(
                    chunksChecked: report.chunksChecked, bytesChecked: report.bytesChecked,
                    problems: report.problems.map {
                        Problem(chunk: $0.chunk.description, pack: $0.pack, offset: $0.offset, message: $0.message)
                    },
                    incompleteFiles: report.incompleteFiles.map(\.description), indexProblems: report.indexProblems,
                    unfinishedWrite: unfinished, fix: fix, ok: report.isClean))
        } else {
            Output.line("checked \(report.chunksChecked) chunk(s), \(ByteSize.format(report.bytesChecked))")
            for problem in report.problems { Output.line("DAMAGED  \(problem.message)") }
            for file in report.incompleteFiles { Output.line("INCOMPLETE  \(file)") }
            for line in report.indexProblems { Output.line("INDEX  \(line)") }
            if let unfinished { Output.line("note: \(unfinished)") }
            Output.line(report.isClean ? "ok" : "FAILED: the store has damaged or missing data; \(fix ?? "")")
        }
        if !report.isClean { throw ExitCode(1) }
    }

    /// The rest of the home a node needs: the catalog and the node key, each with what to do when it is damaged.
    static func homeProblems(_ home: Home) -> [String] {
        var out: [String] = []
        if let problem = catalogProblem(home) { out.append(problem) }
        out += home.publisherKeys.problems()
        if let mismatch = home.nodeKeyMismatch() { out.append(mismatch) }
        do { _ = try home.nodeKey() } catch {
            out.append(
                "the node key \(home.nodeKeyPath) is unreadable (\(error)): restore it from a backup, or remove it and "
                    + "run `alexandria init` to give this node a new identity")
        }
        return out
    }

    /// What is wrong with the home's catalog, with the command that fixes it; nil for a sound catalog (or none yet).
    /// A catalog is damaged when SQLite's integrity check fails, when a stored fact no longer verifies, or when it
    /// is not the catalog the home committed (`CatalogMark`: missing, empty, another one, older).
    static func catalogProblem(_ home: Home) -> String? {
        if let problem = CatalogMark.problem(catalogPath: home.catalogPath, markPath: home.catalogMarkPath) {
            return problem
        }
        guard access(home.catalogPath, F_OK) == 0 else { return nil }
        let found: String?
        do {
            let catalog = try Catalog(path: home.catalogPath)
            let lines = try catalog.integrityProblems()
            if !lines.isEmpty {
                found = lines.prefix(3).joined(separator: "; ")
            } else {
                let facts = try catalog.contentProblems()
                found = facts.isEmpty ? nil : facts.prefix(3).joined(separator: "; ")
            }
        } catch { found = "\(error)" }
        guard let found else { return nil }
        return "the catalog \(home.catalogPath) is damaged (\(found)); " + CatalogMark.fixAdvice(home.catalogPath)
    }

    /// `verify --repair` for the catalog: a damaged one is moved aside (never deleted: its facts may still be read
    /// from it by hand) and a new, empty catalog takes its place. Every publisher key of this home is marked unsynced,
    /// so `publish` waits for `alexandria sync` to bring its log back from peers instead of starting it over (a fork).
    /// A damaged mark alone, on a sound catalog, is written again.
    static func repairCatalog(_ home: Home) throws -> String? {
        guard let problem = catalogProblem(home) else { return nil }
        if (try? CatalogMark.read(home.catalogMarkPath)) == nil, access(home.catalogPath, F_OK) == 0,
            (try? Catalog(path: home.catalogPath).integrityProblems())?.isEmpty == true,
            (try? Catalog(path: home.catalogPath).contentProblems())?.isEmpty == true
        {
            unlink(home.catalogMarkPath)
            _ = try home.openCatalog()
            return "wrote the catalog mark again from the catalog"
        }
        let aside = home.catalogPath + ".damaged-\(time(nil))"
        let existed = access(home.catalogPath, F_OK) == 0
        for suffix in ["", "-wal", "-shm"] where access(home.catalogPath + suffix, F_OK) == 0 {
            guard rename(home.catalogPath + suffix, aside + suffix) == 0 else {
                throw HomeError("cannot move \(home.catalogPath + suffix) aside: \(String(cString: strerror(errno)))")
            }
        }
        unlink(home.catalogMarkPath)
        _ = try home.openCatalog()
        let keys = home.publisherKeys
        var unsynced: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: home.keysPath + "/publishers")) ?? []
        for file in names.sorted() where file.hasSuffix(".pem") {
            let name = String(file.dropLast(4))
            if keys.isRetired(name) { continue }
            try keys.markUnsynced(name)
            unsynced.append(name)
        }
        return (existed ? "moved the damaged catalog aside to \(aside) and started a new one" : "started a new catalog")
            + " (\(problem.prefix(120))…); "
            + "run `alexandria node run` to learn it again from peers"
            + (unsynced.isEmpty
                ? ""
                : ", then `alexandria sync` before publishing with \(unsynced.joined(separator: ", "))")
    }

    /// The command that fixes what the report found, for the last line.
    static func advice(_ report: VerifyReport, storeNeedsRepair: Bool) -> String? {
        if storeNeedsRepair { return "run `alexandria verify --repair`" }
        if !report.indexProblems.isEmpty { return "do what the INDEX line(s) above say" }
        if !report.incompleteFiles.isEmpty || !report.problems.isEmpty {
            return "the damaged chunks now read as missing: `alexandria fetch` or `alexandria add` the INCOMPLETE "
                + "file(s) again to repair them"
        }
        return nil
    }
}

#if canImport(Glibc)
    import Glibc
#endif

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove chunks nothing references, compact sparse packs, and compress chunks that pay for it.",
        discussion: """
            Readers are never blocked: rows move in one transaction and old packs are removed after it. \
            Compression runs here (and on an idle node), not during add, so that adds run at hashing speed.
            """)

    @OptionGroup var options: HomeOptions

    @Flag(help: "Do not compress; only collect and compact.")
    var noCompress = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    struct Report: Encodable {
        let chunksRemoved: Int
        let packsRewritten: Int
        let packsRemoved: Int
        let bytesBefore: UInt64
        let bytesAfter: UInt64
        let chunksCompressed: Int
        let bytesOfferedToCompressor: UInt64
        let compressSeconds: Double
    }

    func run() throws {
        let home = options.resolved
        try ObjectStorage.checkWriter(home)
        let store = try home.openStore()
        let r = try store.collectGarbage(compress: !noCompress)
        var bucket: S3PackStore.Collected?
        if let s3 = try home.objectStore() {
            // The packs GC wrote go up, then uploads a crash left half done and objects no row names go away.
            do {
                bucket = try ObjectStorage.asWriter(home, s3) { lease in
                    try await s3.offload(store, sealOpen: true, lease: lease)
                    return try await s3.collect(
                        store, lease: lease, staleSeconds: s3.settings.abortUploadsAfterSeconds)
                }
            } catch let error as ObjectStoreError where error.code != .leaseHeld {
                throw ObjectStorage.uploadFailed(error, s3)
            }
        }
        if json {
            try Output.json(
                Report(
                    chunksRemoved: r.chunksRemoved, packsRewritten: r.packsRewritten, packsRemoved: r.packsRemoved,
                    bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, chunksCompressed: r.chunksCompressed,
                    bytesOfferedToCompressor: r.bytesOfferedToCompressor, compressSeconds: r.compressSeconds))
        } else {
            Output.line(
                "removed \(r.chunksRemoved) unreferenced chunk(s); rewrote \(r.packsRewritten) pack(s), "
                    + "compressed \(r.chunksCompressed) chunk(s); \(ByteSize.format(r.bytesBefore)) -> "
                    + "\(ByteSize.format(r.bytesAfter))")
            if let bucket {
                Output.line(
                    "bucket: aborted \(bucket.abortedUploads) stale upload(s), deleted \(bucket.deletedObjects) "
                        + "pack object(s) no index row names")
            }
        }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a file from this node's store (its chunks go at the next gc unless other files use them).")

    @OptionGroup var options: HomeOptions

    @Argument(help: "The file's address.")
    var address: String

    func validate() throws {
        guard ContentHash(userInput: address) != nil else {
            throw ValidationError("'\(address)' is not a sha256:<64 hex> address")
        }
    }

    func run() throws {
        let hash = ContentHash(userInput: address)!
        let home = options.resolved
        try ObjectStorage.checkWriter(home)
        let store = try home.openStore()
        guard try store.remove(hash) else {
            throw StoreError(.unknownAddress, "this store has no file \(hash)")
        }
        // The removal record goes to the bucket too, so a rebuild from it does not bring the file back.
        try ObjectStorage.afterWrite(home, store)
        Output.line("removed \(hash)")
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the files in the store.")

    @OptionGroup var options: HomeOptions

    @Flag(help: "Print the list as JSON.")
    var json = false

    struct Row: Encodable {
        let address: String
        let size: UInt64
        let merkleRoot: String
        let chunks: Int
    }

    func run() throws {
        let files = try options.resolved.openStore().list()
        if json {
            try Output.json(
                files.map {
                    Row(
                        address: $0.address.description, size: $0.size, merkleRoot: $0.merkleRoot.description,
                        chunks: $0.chunkCount)
                })
        } else {
            for f in files { Output.line("\(f.address)  \(f.size)  merkle:\(f.merkleRoot.hex)") }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the node's state: store, catalog, holdings and budget, and (if a node runs) its peers.")

    @OptionGroup var options: HomeOptions

    @Flag(help: "Print the status as JSON.")
    var json = false

    struct Report: Encodable {
        let home: String
        let files: Int
        let chunks: Int
        let rawBytes: UInt64
        let storedBytes: UInt64
        let packBytes: UInt64
        let budgetBytes: UInt64?
        let catalogItems: Int
        let releases: Int
        let pins: Int
        let node: NodeState?
        let nodeRunning: Bool
        /// This node's key as a witness, `ed25519:<64 hex>`, the form `[trust] witnesses` takes.
        let witnessKey: String?
        /// `[trust]`: the witness keys this node trusts and the quorum it needs.
        let trustedWitnesses: [String]
        let quorum: Int
    }

    func run() throws {
        let home = options.resolved
        let store = try home.openStore()
        let u = try store.usage()
        let budget = try home.config().storeBudget
        let catalog = try home.openCatalog()
        let witness = catalog.witnessKey.map(Ed25519Strict.describe)
        let state = LocalNode.state(home)
        let releases = try catalog.allManifests().count
        let pins = try catalog.pins().count
        if json {
            try Output.json(
                Report(
                    home: home.path, files: u.files, chunks: u.chunks, rawBytes: u.rawBytes, storedBytes: u.storedBytes,
                    packBytes: u.packBytes, budgetBytes: budget, catalogItems: catalog.itemCount, releases: releases,
                    pins: pins, node: state, nodeRunning: state.map(LocalNode.isRunning) ?? false,
                    witnessKey: witness, trustedWitnesses: catalog.trust.witnesses.map(Ed25519Strict.describe),
                    quorum: catalog.trust.quorum))
        } else {
            Output.line("home     \(home.path)")
            Output.line("files    \(u.files)")
            Output.line("chunks   \(u.chunks) (\(ByteSize.format(u.rawBytes)) of content)")
            Output.line("on disk  \(ByteSize.format(u.packBytes)) in packs")
            Output.line("budget   \(budget.map { ByteSize.format($0) } ?? "no limit")")
            Output.line("catalog  \(catalog.itemCount) items, \(releases) releases, \(pins) pinned")
            Output.line(
                "witness  \(witness ?? "no node key")  (other nodes list this in [trust] witnesses to trust it)")
            Output.line(
                catalog.trust.isSet
                    ? "trust    \(catalog.trust.quorum) of \(catalog.trust.witnesses.count) listed witnesses settle a conflict"
                    : "trust    no witnesses listed: each conflict is settled by the binding this node saw first")
            if let state {
                let m = state.mirror
                Output.line(
                    "node     ed25519:\(state.node.prefix(16)) on port \(state.listen), "
                        + LocalNode.describe(state))
                Output.line(
                    "mirror   mode \(m["mode"] ?? "?"), holds \(m["releasesHeld"] ?? "?") of \(m["releasesKnown"] ?? "?") "
                        + "releases (\(ByteSize.format(UInt64(m["used"] ?? "") ?? 0)) stored of a "
                        + "\(ByteSize.format(UInt64(m["budget"] ?? "") ?? 0)) budget; "
                        + "\(ByteSize.format(UInt64(m["usedLogical"] ?? "") ?? 0)) of content)"
                )
                Output.line("peers    \(state.peers.count) connected, \(state.knownPeers) known (`alexandria peers`)")
                for p in state.peers.prefix(8) {
                    Output.line(
                        "  ed25519:\(p.id.prefix(16))  \(p.address)  \(p.direction)  score "
                            + String(format: "%.1f", p.score))
                }
            } else {
                Output.line("node     not started on this home")
            }
        }
    }
}
