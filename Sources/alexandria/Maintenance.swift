import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaPeer
import AlexandriaStore
import ArgumentParser

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
        let ok: Bool
    }

    func run() throws {
        let home = options.resolved
        if repair {
            guard home.isInitialized || access(home.storePath + "/packs", F_OK) == 0 else {
                throw HomeError("no Alexandria store at \(home.storePath); nothing to repair")
            }
            let rebuilt = try ContentStore.rebuildIndex(directory: home.storePath)
            if !json {
                Output.line(
                    "rebuilt the index from \(rebuilt.packsScanned) pack(s): \(rebuilt.files) file(s), "
                        + "\(rebuilt.chunks) chunk(s); \(rebuilt.damagedChunks) damaged chunk record(s) left out")
            }
        }
        let store = try home.openStore()
        var bar: ProgressBar?
        let report = try store.verify { done, total in
            if bar == nil { bar = ProgressBar(label: "verify", total: total) }
            bar?.update(done)
        }
        bar?.finish()
        if json {
            try Output.json(
                Report(
                    chunksChecked: report.chunksChecked, bytesChecked: report.bytesChecked,
                    problems: report.problems.map {
                        Problem(chunk: $0.chunk.description, pack: $0.pack, offset: $0.offset, message: $0.message)
                    },
                    incompleteFiles: report.incompleteFiles.map(\.description), indexProblems: report.indexProblems,
                    ok: report.isClean))
        } else {
            Output.line("checked \(report.chunksChecked) chunk(s), \(ByteSize.format(report.bytesChecked))")
            for problem in report.problems { Output.line("DAMAGED  \(problem.message)") }
            for file in report.incompleteFiles { Output.line("INCOMPLETE  \(file)") }
            for line in report.indexProblems { Output.line("INDEX  \(line)") }
            Output.line(report.isClean ? "ok" : "FAILED: the store has damaged or missing data")
        }
        if !report.isClean { throw ExitCode(1) }
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
        let store = try options.resolved.openStore()
        let r = try store.collectGarbage(compress: !noCompress)
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
        let store = try options.resolved.openStore()
        guard try store.remove(hash) else {
            throw StoreError(.unknownAddress, "this store has no file \(hash)")
        }
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
    }

    func run() throws {
        let home = options.resolved
        let store = try home.openStore()
        let u = try store.usage()
        let budget = try home.config().storeBudget
        let catalog = try Catalog(path: home.catalogPath)
        let state = LocalNode.state(home)
        let releases = try catalog.allManifests().count
        let pins = try catalog.pins().count
        if json {
            try Output.json(
                Report(
                    home: home.path, files: u.files, chunks: u.chunks, rawBytes: u.rawBytes, storedBytes: u.storedBytes,
                    packBytes: u.packBytes, budgetBytes: budget, catalogItems: catalog.itemCount, releases: releases,
                    pins: pins, node: state, nodeRunning: state.map(LocalNode.isRunning) ?? false))
        } else {
            Output.line("home     \(home.path)")
            Output.line("files    \(u.files)")
            Output.line("chunks   \(u.chunks) (\(ByteSize.format(u.rawBytes)) of content)")
            Output.line("on disk  \(ByteSize.format(u.packBytes)) in packs")
            Output.line("budget   \(budget.map { ByteSize.format($0) } ?? "no limit")")
            Output.line("catalog  \(catalog.itemCount) items, \(releases) releases, \(pins) pinned")
            if let state {
                let m = state.mirror
                Output.line(
                    "node     ed25519:\(state.node.prefix(16)) on port \(state.listen), "
                        + LocalNode.describe(state))
                Output.line(
                    "mirror   mode \(m["mode"] ?? "?"), holds \(m["releasesHeld"] ?? "?") of \(m["releasesKnown"] ?? "?") "
                        + "releases (\(ByteSize.format(UInt64(m["used"] ?? "") ?? 0)) of a \(ByteSize.format(UInt64(m["budget"] ?? "") ?? 0)) budget)"
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
