import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import AlexandriaWire
import Foundation
import Logging
import Synchronization

/// What a mirror keeps (config `[mirror]`).
public struct MirrorPolicy: Sendable {
    public enum Mode: String, Sendable {
        /// Every release it can within the budget, most demanded first (the default: a useful mirror).
        case all
        /// Only releases with fewer than `replicationFactor` live holders, plus pins and mirrored publishers.
        case factor
        /// Only pins and mirrored publishers.
        case pinned
    }
    public var mode: Mode = .all
    /// The most the mirror's releases may take in the store; eviction keeps within it.
    public var budgetBytes: UInt64 = 10 << 30
    /// Publisher ids (or id prefixes of at least 8 hex digits) whose every release is kept.
    public var publishers: [String] = []
    /// Holders every release should have; fewer makes a mirror with room pull it.
    public var replicationFactor = 3
    /// Seconds between replication rounds.
    public var intervalSeconds = 2.0
    /// Seconds a release may stay under-replicated before one more mirror in rendezvous order pulls it (and one more
    /// every such period after): the mirrors ranked first may be down, full, or refusing it. Long enough for the
    /// chosen ones to finish a large pull and state it.
    public var placementPatienceSeconds = 300.0
    /// A holder's availability statement older than this no longer counts; holders restate at half of it.
    public var holderTTLSeconds = 600.0
    /// Seconds between this node's demand reports, and the window they count.
    public var demandReportSeconds = 60.0
    public var demandWindowMinutes = 60
    /// Where fetched files are assembled before they are dropped (the chunks stay in the store).
    public var scratchDirectory = NSTemporaryDirectory()
    /// Seconds between scrubs (every chunk read back, damaged ones repaired from peers); 0: never.
    public var scrubIntervalSeconds = 7 * 86400.0
    /// Where the time of the last scrub is kept across restarts (nil: in memory only).
    public var scrubStatePath: String?
    /// Compression on idle: the share of one core the daemon may spend compressing sealed packs the compressor has
    /// not seen, while it has nothing to replicate (`Mirror.compressIfIdle`); 0: never (then only `gc` compresses).
    public var idleCompressionShare = 0.25
    /// Seconds without a pull before the mirror counts as idle.
    public var idleAfterSeconds = 30.0

    public init() {}
}

/// The replication half of a node: the driver of `MirrorCore`, which makes every decision (what to keep, pull, evict,
/// state and witness). Each round it reads the facts from the catalog and the store (`candidates`), hands them to the
/// core with the live nodes and the time, and carries out the actions: signed statements and cosignatures go out
/// through gossip, pulls are verified fetches into the store, evictions remove files. One round at a time.
public actor Mirror {
    let store: ContentStore
    let catalog: Catalog
    let identity: NodeIdentity
    let gossip: GossipNode
    let policy: MirrorPolicy
    let logger: Logger
    var core: MirrorCore
    /// When compression on idle may run next.
    var nextIdleCompression = Date.distantPast
    /// Manifests already verified from the catalog, by id.
    var verified: [ContentHash: SignedManifest] = [:]
    /// The clock every decision is made by.
    let clock: @Sendable () -> Date
    var scrubSchedule: ScrubSchedule
    /// Releases planned but not held yet, for the replication-lag metrics.
    var replicationLag = ReplicationLag()

    public init(
        store: ContentStore, catalog: Catalog, identity: NodeIdentity, gossip: GossipNode, policy: MirrorPolicy,
        logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.clock = clock
        scrubSchedule = ScrubSchedule.load(
            from: policy.scrubStatePath, intervalSeconds: policy.scrubIntervalSeconds, now: clock())
        self.store = store
        self.catalog = catalog
        self.identity = identity
        self.gossip = gossip
        self.policy = policy
        self.logger = logger
        core = MirrorCore(policy: policy, selfHex: Hex.encode(identity.publicKey))
    }

    public func run() async {
        while !Task.isCancelled {
            do { try await tick() } catch {
                logger.warning("replication round failed", metadata: ["error": "\(error)"])
            }
            await scrubIfDue()
            await compressIfIdle()
            try? await Task.sleep(nanoseconds: UInt64(policy.intervalSeconds * 1e9))
        }
    }

    var now: Double { clock().timeIntervalSince1970 }

    /// The facts of every release the node knows, in catalog order (oldest first), and their verified manifests.
    func candidates() throws -> (releases: [MirrorRelease], manifests: [ContentHash: SignedManifest]) {
        let pins = try catalog.pins()
        let demand = try catalog.networkDemand()
        let local = Dictionary(
            try catalog.localDemand(minutes: policy.demandWindowMinutes).map { ($0.manifest, $0.fetches) },
            uniquingKeysWith: +)
        let mine = try catalog.statements(of: identity.publicKey)
        var out: [MirrorRelease] = []
        var manifests: [ContentHash: SignedManifest] = [:]
        var equivocating: [PublisherID: Bool] = [:]
        for (id, publisher, _) in try catalog.allManifests() {
            // Stored manifests never change, so each is verified (its publisher's log replayed) once, not every round.
            guard let signed = try verified[id] ?? catalog.manifest(id: id) else { continue }
            verified[id] = signed
            // A manifest that lost a conflict is evidence, never a release to keep. Settling costs proofs and
            // witnesses, so it runs only for publishers with a proof against them.
            if equivocating[publisher] == nil {
                equivocating[publisher] = try catalog.hasEquivocations(publisher: publisher)
            }
            // A contested name that nothing settles here (see ForkChoice) is kept under neither manifest.
            if equivocating[publisher] == true,
                try catalog.settledBinding(publisher: publisher, release: signed.manifest.release.local) != id
            {
                continue
            }
            manifests[id] = signed
            let (stored, pending) = try storedBytes(signed.manifest)
            let held = try holdsAll(signed.manifest)
            let must =
                pins.contains(id)
                || policy.publishers.contains { publisher.description.hasPrefix($0.lowercased()) && $0.count >= 8 }
            let witnessable = try held && witnessable(signed)
            let holders = try catalog.holders(of: id, maxAgeMillis: Int(policy.holderTTLSeconds * 1000))
                .filter { $0 != identity.publicKey }
            out.append(
                MirrorRelease(
                    id: id, holderKeys: Set(holders.map { Hex.encode($0) }),
                    size: signed.manifest.files.reduce(UInt64(0)) { $0 + $1.size }, stored: stored, pending: pending,
                    files: signed.manifest.files.map(\.sha256), held: held, must: must,
                    demand: (demand[id] ?? 0) + (local[id] ?? 0),
                    stated: mine[id].map { .init(holds: $0.holds, at: Double($0.timestampMillis) / 1000) },
                    witnessable: witnessable))
        }
        return (out, manifests)
    }

    /// What the release's chunks take in the store's packs, by chunk, and the logical bytes the store still lacks.
    func storedBytes(_ manifest: Manifest) throws -> (stored: [ContentHash: UInt64], pending: UInt64) {
        var lengths: [ContentHash: UInt64] = [:]
        var pending: UInt64 = 0
        for file in manifest.files {
            guard let recipe = try store.recipe(of: file.sha256) else {
                pending += file.size
                continue
            }
            for chunk in recipe.chunks { lengths[chunk.id] = UInt64(chunk.length) }
        }
        let stored = try store.storedBytes(of: lengths.keys)
        for (id, length) in lengths where stored[id] == nil { pending += length }
        return (stored, pending)
    }

    /// Whether the store holds every chunk of every file, each file's chunk list matching the manifest.
    func holdsAll(_ manifest: Manifest) throws -> Bool {
        for file in manifest.files {
            guard let recipe = try store.recipe(of: file.sha256), recipe.merkleRoot == file.merkleRoot,
                recipe.size == file.size
            else { return false }
            let ids = recipe.chunks.map(\.id)
            guard try store.holds(ids).count == Set(ids).count else { return false }
        }
        return true
    }

    /// Whether the publisher's newest checkpoint covers the release and this node has not cosigned it yet.
    func witnessable(_ signed: SignedManifest) throws -> Bool {
        guard let checkpoint = try newestCheckpoint(covering: signed) else { return false }
        let existing = try catalog.cosignatures(origin: checkpoint.origin, size: checkpoint.size, root: checkpoint.root)
        return !existing.contains { $0.witness == identity.publicKey }
    }

    func newestCheckpoint(covering signed: SignedManifest) throws -> Checkpoint? {
        guard let (checkpoint, _) = try catalog.checkpoints(signed.manifest.publisher).last,
            checkpoint.size > signed.manifest.logIndex
        else { return nil }
        return checkpoint
    }

    func tick() async throws {
        let (all, manifests) = try candidates()
        let now = self.now
        let live = await gossip.liveNodes(within: policy.holderTTLSeconds)
        let round = core.round(all, live: live, now: now)
        recordMetrics(all, keep: round.plan, now: now)
        // A round that fails before its pull ran still ends the pull, or the core would wait for it forever.
        var pending = round.actions.compactMap { if case .pull(let id) = $0 { id } else { nil } }.first
        defer { if let pending { core.pullFinished(pending, ok: false, now: self.now) } }
        var own: [CatalogItem] = []
        for action in round.actions {
            switch action {
            case .state(let id, let holds):
                own.append(
                    try AvailabilityStatement(
                        nodeKey: identity.publicKey, manifest: id, timestampMillis: UInt64(now * 1000), holds: holds
                    ).signed(with: identity.key))
            case .cosign(let id):
                if let signed = manifests[id], let cosignature = try cosign(signed) { own.append(cosignature) }
            case .pull(let id):
                // What is held is stated before the pull, which can take long.
                if !own.isEmpty { await gossip.publishOwn(own) }
                own = []
                var ok = false
                if let signed = manifests[id] {
                    let (pulled, bad) = await pull(signed)
                    ok = pulled
                    // Peers whose bytes failed verification: no holders, for a holder TTL.
                    if !bad.isEmpty {
                        for (key, address) in await gossip.addresses() where bad.contains(address.description) {
                            core.servedBadBytes(key, now: self.now)
                        }
                    }
                }
                pending = nil
                core.pullFinished(id, ok: ok, now: self.now)
            case .remove(let id, let files):
                for file in files { _ = try store.remove(file) }
                logger.info(
                    "evicted to stay within budget",
                    metadata: [
                        "release": "\(manifests[id].map { "\($0.manifest.release)" } ?? id.description)",
                        "holders.other": "\(all.first { $0.id == id }?.otherHolders ?? 0)",
                    ])
            case .collectGarbage:
                _ = try store.collectGarbage(compress: false)
            }
        }
        if !own.isEmpty { await gossip.publishOwn(own) }
        try await reportDemand()
        await gossip.setMirrorState([
            "mode": policy.mode.rawValue, "budget": "\(policy.budgetBytes)",
            "used": "\(round.usedStored)", "usedLogical": "\(round.usedLogical)",
            "releasesKnown": "\(all.count)", "releasesHeld": "\(all.filter(\.held).count)",
            "releasesPlanned": "\(round.plan.count)",
        ])
    }

    /// Cosigns the publisher's newest checkpoint that covers the release, only if it is consistent with what this node
    /// cosigned before (`Catalog.cosign`); a refusal is logged, never signed.
    func cosign(_ signed: SignedManifest) throws -> CatalogItem? {
        guard let checkpoint = try newestCheckpoint(covering: signed) else { return nil }
        do {
            return try catalog.cosign(checkpoint, publisher: signed.manifest.publisher, key: identity.key)
        } catch let error as CatalogError {
            logger.warning("not witnessing", metadata: ["release": "\(signed.manifest.release)", "why": "\(error)"])
            return nil
        }
    }

    /// Where to fetch a release from: its live holders, then every connected peer (`PeerChoice`).
    func peers(for id: ContentHash) async -> [PeerAddress] {
        await gossip.fetchPeers(holding: id, catalog: catalog, maxAgeMillis: Int(policy.holderTTLSeconds * 1000))
    }

    /// Fetches every file of the release into the store; true if it is all there, verified. Also returns the
    /// addresses of peers that sent bytes which failed verification.
    func pull(_ signed: SignedManifest) async -> (ok: Bool, badPeers: Set<String>) {
        let peers = await peers(for: signed.id)
        guard !peers.isEmpty else { return (false, []) }
        let bad = Mutex<Set<String>>([])
        logger.info(
            "replicating", metadata: ["release": "\(signed.manifest.release)", "peers.count": "\(peers.count)"])
        let fetcher = Fetcher(store: store, identity: identity, logger: logger)
        fetcher.onBadChunk = { peer in bad.withLock { _ = $0.insert(peer) } }
        do {
            try await ReleaseFetch(fetcher: fetcher).pullIntoStore(
                signed.manifest, peers: peers, scratchDirectory: policy.scratchDirectory)
        } catch {
            logger.info(
                "replication pull failed", metadata: ["release": "\(signed.manifest.release)", "error": "\(error)"])
            return (false, bad.withLock { $0 })
        }
        try? catalog.countDemand(signed.id)
        return (true, bad.withLock { $0 })
    }

    func reportDemand() async throws {
        let counts = try catalog.localDemand(minutes: policy.demandWindowMinutes)
        guard core.demandReportDue(counts.map { "\($0.manifest.hex):\($0.fetches)" }, now: now) else { return }
        let report = DemandReport(
            nodeKey: identity.publicKey, timestampMillis: UInt64(now * 1000),
            counts: counts.map { ($0.manifest, UInt32(clamping: $0.fetches)) })
        await gossip.publishOwn([try report.signed(with: identity.key)])
    }
}

extension Mirror {
    /// Compression on idle: when the mirror has pulled nothing for `idleAfterSeconds`, compresses one sealed pack the
    /// compressor has not seen (`ContentStore.compressOneIdlePack`, on a thread of its own), then waits until the time
    /// that took is at most `idleCompressionShare` of the time since it began: the CPU budget. Logs what it did.
    func compressIfIdle() async {
        let share = policy.idleCompressionShare
        let now = clock()
        guard share > 0, now >= nextIdleCompression,
            core.lastPull.map({ now.timeIntervalSince1970 - $0 >= policy.idleAfterSeconds }) ?? true
        else { return }
        let store = self.store
        let started = Date()
        do {
            let report = try await Self.offThread { try store.compressOneIdlePack() }
            let took = Date().timeIntervalSince(started)
            guard let report else {
                // Nothing to do: look again in a while rather than every round.
                nextIdleCompression = now.addingTimeInterval(60)
                return
            }
            nextIdleCompression = clock().addingTimeInterval(took * (1 / min(1, share) - 1))
            logger.info(
                "compressed a pack on idle",
                metadata: [
                    "chunks.compressed": "\(report.chunksCompressed)",
                    "bytes.before": "\(report.bytesBefore)", "bytes.after": "\(report.bytesAfter)",
                    "seconds": "\(String(format: "%.2f", took))",
                ])
        } catch {
            nextIdleCompression = now.addingTimeInterval(600)
            logger.warning("compression on idle failed", metadata: ["error": "\(error)"])
        }
    }
}
