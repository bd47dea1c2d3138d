import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import AlexandriaWire
import Foundation
import Logging

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

/// The replication half of a node: decides which releases to keep (policy, budget, demand, holders), pulls their
/// chunks from holders, witnesses what it holds (cosignature of the publisher's checkpoint), states what it holds
/// (availability), reports demand, and evicts to stay within budget. One round at a time; no I/O outside `tick`.
public actor Mirror {
    let store: ContentStore
    let catalog: Catalog
    let identity: NodeIdentity
    let gossip: GossipNode
    let policy: MirrorPolicy
    let logger: Logger
    var lastDemandReport = Date.distantPast
    var lastDemandCounts: [String] = []
    var lastFetchFailure: [ContentHash: Date] = [:]
    /// When this mirror last pulled a release, and when compression on idle may run next.
    var lastPull: Date?
    var nextIdleCompression = Date.distantPast
    /// Manifests already verified from the catalog, by id.
    var verified: [ContentHash: SignedManifest] = [:]
    /// The clock the scrub schedule is decided by.
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

    struct Candidate {
        let id: ContentHash
        /// Live holders other than this node, by key (hex).
        let holderKeys: Set<String>
        let manifest: SignedManifest
        /// The release's logical size: the sum of its files' sizes.
        let size: UInt64
        /// What its chunks the store holds take in the packs (`ContentStore.storedBytes`): budgets count these, each
        /// chunk once however many releases share it.
        let stored: [ContentHash: UInt64]
        /// The logical bytes still to fetch (chunks or whole files the store lacks): an upper bound on what they will
        /// take once stored.
        let pending: UInt64
        let held: Bool
        let must: Bool
        let otherHolders: Int
        let demand: Int
    }

    func candidates() throws -> [Candidate] {
        let pins = try catalog.pins()
        let demand = try catalog.networkDemand()
        let local = Dictionary(
            try catalog.localDemand(minutes: policy.demandWindowMinutes).map { ($0.manifest, $0.fetches) },
            uniquingKeysWith: +)
        var out: [Candidate] = []
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
            let size = signed.manifest.files.reduce(UInt64(0)) { $0 + $1.size }
            let (stored, pending) = try storedBytes(signed.manifest)
            let held = try holdsAll(signed.manifest)
            let must =
                pins.contains(id)
                || policy.publishers.contains { publisher.description.hasPrefix($0.lowercased()) && $0.count >= 8 }
            let holders = try catalog.holders(of: id, maxAgeMillis: Int(policy.holderTTLSeconds * 1000))
                .filter { $0 != identity.publicKey }
            out.append(
                Candidate(
                    id: id, holderKeys: Set(holders.map { Hex.encode($0) }), manifest: signed, size: size,
                    stored: stored, pending: pending, held: held,
                    must: must, otherHolders: holders.count,
                    demand: (demand[id] ?? 0) + (local[id] ?? 0)))
        }
        return out
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

    /// The stored bytes of a set of releases: each chunk counted once (`counted` carries the chunks already counted),
    /// plus what they still lack.
    static func cost(_ c: Candidate, counted: inout Set<ContentHash>) -> UInt64 {
        var total = c.pending
        for (id, bytes) in c.stored where counted.insert(id).inserted { total += bytes }
        return total
    }

    /// What the held releases take in the store (each chunk once), and their logical size.
    static func usage(_ all: [Candidate]) -> (stored: UInt64, logical: UInt64) {
        var counted = Set<ContentHash>()
        var stored: UInt64 = 0
        var logical: UInt64 = 0
        for c in all where c.held {
            stored += cost(c, counted: &counted)
            logical += c.size
        }
        return (stored, logical)
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

    /// What to keep: must-keeps, then under-replicated releases, then (mode `all`) the rest, most demanded first,
    /// newest first among equals, while the budget lasts. The budget counts stored bytes (after compression, each
    /// chunk once), and logical bytes for what is not stored yet.
    func plan(_ all: [Candidate], live: Set<String> = []) -> Set<ContentHash> {
        var keep: Set<ContentHash> = []
        var total: UInt64 = 0
        var counted = Set<ContentHash>()
        let r = policy.replicationFactor
        let ordered = all.enumerated().sorted { a, b in
            let ka = (a.element.must ? 0 : (a.element.otherHolders + (a.element.held ? 1 : 0) <= r ? 1 : 2))
            let kb = (b.element.must ? 0 : (b.element.otherHolders + (b.element.held ? 1 : 0) <= r ? 1 : 2))
            if ka != kb { return ka < kb }
            if a.element.demand != b.element.demand { return a.element.demand > b.element.demand }
            return a.offset > b.offset
        }.map(\.element)
        for c in ordered {
            let underReplicated = c.otherHolders < r || (c.held && c.otherHolders < r)
            let wanted: Bool
            switch policy.mode {
            case .all: wanted = true
            case .factor: wanted = c.must || (underReplicated && (c.held || chosen(c, live: live)))
            case .pinned: wanted = c.must
            }
            guard wanted else { continue }
            var tentative = counted
            let cost = Self.cost(c, counted: &tentative)
            if c.must || total + cost <= policy.budgetBytes {
                keep.insert(c.id)
                total += cost
                counted = tentative
            }
        }
        return keep
    }

    /// A node's place for a release in rendezvous order: `SHA-256(manifest id || node key hex)`, lowest first.
    func rank(_ manifest: ContentHash, _ nodeKeyHex: String) -> ContentHash {
        ContentHash.of(manifest.bytes + Array(nodeKeyHex.utf8))
    }

    /// Rendezvous placement: of the live nodes that do not hold the release, the ones ranked first by
    /// `SHA-256(manifest id || node key)` make up the missing holders, so mirrors do not all pull at once.
    func chosen(_ c: Candidate, live: Set<String>) -> Bool {
        let missing = policy.replicationFactor - c.otherHolders
        guard missing > 0 else { return false }
        let me = Hex.encode(identity.publicKey)
        let ranked = live.subtracting(c.holderKeys).union([me]).sorted { rank(c.id, $0) < rank(c.id, $1) }
        return ranked.prefix(missing).contains(me)
    }

    func tick() async throws {
        let all = try candidates()
        let keep = plan(all, live: await gossip.liveNodes(within: policy.holderTTLSeconds))
        recordMetrics(all, keep: keep, now: Date().timeIntervalSince1970)
        let mine = try catalog.statements(of: identity.publicKey)
        let now = Int(Date().timeIntervalSince1970 * 1000)
        var own: [CatalogItem] = []
        // State and witness what is held; restate before the statement ages out.
        for c in all where c.held {
            let stated = mine[c.id]
            if stated == nil || stated!.holds == false
                || now - stated!.timestampMillis > Int(policy.holderTTLSeconds * 1000 / 2)
            {
                own.append(
                    try AvailabilityStatement(
                        nodeKey: identity.publicKey, manifest: c.id, timestampMillis: UInt64(now), holds: true
                    ).signed(with: identity.key))
            }
            if let cosignature = try cosignIfNeeded(c.manifest) { own.append(cosignature) }
        }
        if !own.isEmpty { await gossip.publishOwn(own) }
        // Pull one missing release per round (its files in turn), from its holders and connected peers.
        if let next = all.first(where: {
            keep.contains($0.id) && !$0.held
                && (lastFetchFailure[$0.id].map { Date().timeIntervalSince($0) > 10 } ?? true)
        }) {
            await pull(next)
        }
        try await evict(all, keep: keep)
        try await reportDemand()
        let usage = Self.usage(all)
        await gossip.setMirrorState([
            "mode": policy.mode.rawValue, "budget": "\(policy.budgetBytes)",
            "used": "\(usage.stored)", "usedLogical": "\(usage.logical)",
            "releasesKnown": "\(all.count)", "releasesHeld": "\(all.filter(\.held).count)",
            "releasesPlanned": "\(keep.count)",
        ])
    }

    /// Cosigns the publisher's newest checkpoint that covers the release, once, and only if it is consistent with
    /// what this node cosigned before (`Catalog.cosign`); a refusal is logged, never signed.
    func cosignIfNeeded(_ signed: SignedManifest) throws -> CatalogItem? {
        guard let (checkpoint, _) = try catalog.checkpoints(signed.manifest.publisher).last,
            checkpoint.size > signed.manifest.logIndex
        else { return nil }
        let existing = try catalog.cosignatures(origin: checkpoint.origin, size: checkpoint.size, root: checkpoint.root)
        if existing.contains(where: { $0.witness == identity.publicKey }) { return nil }
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

    func pull(_ c: Candidate) async {
        let peers = await peers(for: c.id)
        guard !peers.isEmpty else { return }
        lastPull = clock()
        logger.info(
            "replicating", metadata: ["release": "\(c.manifest.manifest.release)", "peers.count": "\(peers.count)"])
        let fetcher = Fetcher(store: store, identity: identity, logger: logger)
        do {
            try await ReleaseFetch(fetcher: fetcher).pullIntoStore(
                c.manifest.manifest, peers: peers, scratchDirectory: policy.scratchDirectory)
        } catch {
            lastFetchFailure[c.id] = Date()
            logger.info(
                "replication pull failed", metadata: ["release": "\(c.manifest.manifest.release)", "error": "\(error)"])
            return
        }
        try? catalog.countDemand(c.id)
    }

    /// Removes releases the plan no longer keeps, only while over budget: never a pinned one, never one no other
    /// live holder has, never one this node is the designated keeper of, those with at least R other holders first,
    /// least demanded first.
    func evict(_ all: [Candidate], keep: Set<ContentHash>) async throws {
        var used = Self.usage(all).stored
        guard used > policy.budgetBytes else { return }
        // How many held releases use each stored chunk: evicting one frees the chunks no other held release uses.
        var users: [ContentHash: Int] = [:]
        for c in all where c.held { for id in c.stored.keys { users[id, default: 0] += 1 } }
        let r = policy.replicationFactor
        let victims = all.filter {
            $0.held && !$0.must && !keep.contains($0.id) && $0.otherHolders > 0 && !isKeeper($0)
        }
        .sorted { a, b in
            let ra = a.otherHolders >= r
            let rb = b.otherHolders >= r
            if ra != rb { return ra }
            return a.demand < b.demand
        }
        let keptFiles = Set(all.filter { keep.contains($0.id) }.flatMap { $0.manifest.manifest.files.map(\.sha256) })
        var removed: [CatalogItem] = []
        for v in victims where used > policy.budgetBytes {
            for file in v.manifest.manifest.files where !keptFiles.contains(file.sha256) {
                _ = try store.remove(file.sha256)
            }
            for (id, bytes) in v.stored {
                users[id, default: 1] -= 1
                if users[id] == 0 { used -= min(used, bytes) }
            }
            logger.info(
                "evicted to stay within budget",
                metadata: ["release": "\(v.manifest.manifest.release)", "holders.other": "\(v.otherHolders)"])
            removed.append(
                try AvailabilityStatement(
                    nodeKey: identity.publicKey, manifest: v.id,
                    timestampMillis: UInt64(Date().timeIntervalSince1970 * 1000), holds: false
                ).signed(with: identity.key))
        }
        if !removed.isEmpty {
            _ = try store.collectGarbage(compress: false)
            await gossip.publishOwn(removed)
        }
    }

    /// Of a release's holders (this node included), the one ranked first by `SHA-256(manifest id || node key hex)`
    /// never evicts it: holders that all see each other as "another holder" cannot all drop it at once.
    func isKeeper(_ c: Candidate) -> Bool {
        let me = Hex.encode(identity.publicKey)
        let first = c.holderKeys.union([me]).min { rank(c.id, $0) < rank(c.id, $1) }
        return first == me
    }

    func reportDemand() async throws {
        let since = Date().timeIntervalSince(lastDemandReport)
        guard since >= policy.demandReportSeconds else { return }
        let counts = try catalog.localDemand(minutes: policy.demandWindowMinutes)
        let summary = counts.map { "\($0.manifest.hex):\($0.fetches)" }
        // A report only when the counts changed, or to keep an unchanged one from ageing out.
        guard !counts.isEmpty, summary != lastDemandCounts || since >= 10 * policy.demandReportSeconds else { return }
        lastDemandReport = Date()
        lastDemandCounts = summary
        let report = DemandReport(
            nodeKey: identity.publicKey, timestampMillis: UInt64(Date().timeIntervalSince1970 * 1000),
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
            lastPull.map({ now.timeIntervalSince($0) >= policy.idleAfterSeconds }) ?? true
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
