import AlexandriaCore

/// What a mirror knows about one release at the start of a round: the driver reads it from the catalog and the store
/// (`Mirror.candidates`), the simulator from its model. Facts only; every decision on them is `MirrorCore`'s.
public struct MirrorRelease: Sendable, Equatable {
    /// This node's latest availability statement for the release.
    public struct Statement: Sendable, Equatable {
        public var holds: Bool
        /// Seconds on the core's clock.
        public var at: Double
        public init(holds: Bool, at: Double) {
            self.holds = holds
            self.at = at
        }
    }

    /// The manifest id.
    public let id: ContentHash
    /// Live holders other than this node, by node key (hex).
    public var holderKeys: Set<String>
    /// The release's logical size: the sum of its files' sizes.
    public var size: UInt64
    /// What its chunks the store holds take in the store, by chunk: budgets count these, each chunk once however many
    /// releases share it.
    public var stored: [ContentHash: UInt64]
    /// The logical bytes still to fetch: an upper bound on what they will take once stored.
    public var pending: UInt64
    /// Its files' content addresses (what eviction removes from the store).
    public var files: [ContentHash]
    /// Whether the store holds every chunk of every file.
    public var held: Bool
    /// Pinned, or of a mirrored publisher: kept whatever the budget.
    public var must: Bool
    /// Fetches counted for it (network demand reports plus this node's own).
    public var demand: Int
    /// This node's latest availability statement for it, if any.
    public var stated: Statement?
    /// A checkpoint of its publisher covers it and this node has not cosigned that checkpoint yet.
    public var witnessable: Bool

    public init(
        id: ContentHash, holderKeys: Set<String> = [], size: UInt64, stored: [ContentHash: UInt64] = [:],
        pending: UInt64 = 0, files: [ContentHash] = [], held: Bool, must: Bool = false, demand: Int = 0,
        stated: Statement? = nil, witnessable: Bool = false
    ) {
        self.id = id
        self.holderKeys = holderKeys
        self.size = size
        self.stored = stored
        self.pending = pending
        self.files = files
        self.held = held
        self.must = must
        self.demand = demand
        self.stated = stated
        self.witnessable = witnessable
    }

    public var otherHolders: Int { holderKeys.count }
}

/// What the driver must do for the mirror core, in order.
public enum MirrorAction: Sendable, Equatable {
    /// Sign and publish an availability statement for the release (`holds` true: this node serves it).
    case state(ContentHash, holds: Bool)
    /// Cosign the newest checkpoint of the release's publisher that covers it (`Catalog.cosign` refuses one
    /// inconsistent with what this node cosigned before).
    case cosign(ContentHash)
    /// Fetch the release from its holders and connected peers into the store; report `pullFinished`.
    case pull(ContentHash)
    /// Evict the release: remove these files from the store (files a kept release also names are not listed).
    case remove(ContentHash, files: [ContentHash])
    /// Collect garbage after removals.
    case collectGarbage
}

/// What one round decided, besides its actions.
public struct MirrorRound: Sendable, Equatable {
    /// The releases the plan keeps.
    public var plan: Set<ContentHash>
    /// What the held releases take in the store (each chunk once), and their logical size.
    public var usedStored: UInt64
    public var usedLogical: UInt64
    public var actions: [MirrorAction]
}

/// The mirror's decisions as an I/O-free state machine, in the style of `GossipCore`: placement (what to keep, and
/// rendezvous placement of under-replicated releases), replication (which release to pull next, backing off after a
/// failed pull), eviction (what to drop to stay within budget, never the last copy a node knows of and never the
/// release this node is the designated keeper of), witnessing and availability statements. Events carry the time
/// (seconds, the driver's clock); outputs are `MirrorAction`s. No store, no catalog, no clock, no dictionary order in
/// a decision: `Mirror` is its driver on a real node, `MirrorSimulation` on simulated ones.
public struct MirrorCore: Sendable {
    public let policy: MirrorPolicy
    /// This node's key (hex): its place in rendezvous order.
    public let selfHex: String
    /// When a pull of a release last failed (no retry within `retrySeconds`).
    public private(set) var lastFetchFailure: [ContentHash: Double] = [:]
    /// The release being pulled, if any: one pull at a time.
    public private(set) var pulling: ContentHash?
    /// When this mirror last finished a pull that brought a release in (compression on idle waits for a quiet mirror).
    public private(set) var lastPull: Double?
    /// When each release not held here was first seen with fewer than `replicationFactor` holders (placement
    /// escalation).
    var underReplicatedSince: [ContentHash: Double] = [:]
    /// Keys of holders that served bad bytes here, and when (see `servedBadBytes`).
    public private(set) var distrusted: [String: Double] = [:]
    var lastDemandReport = -Double.infinity
    var lastDemandSummary: [String] = []

    /// Seconds after a failed pull before the release is tried again.
    public static let retrySeconds = 10.0

    public init(policy: MirrorPolicy, selfHex: String) {
        self.policy = policy
        self.selfHex = selfHex
    }

    // MARK: - Events

    /// One replication round over what the node knows: plan, state and witness what is held (and retract what no
    /// longer is), pull one missing planned release, evict while over budget.
    public mutating func round(_ all: [MirrorRelease], live: Set<String>, now: Double) -> MirrorRound {
        // A holder that served bytes which failed verification here is no holder, for a holder TTL.
        distrusted = distrusted.filter { now - $0.value < policy.holderTTLSeconds }
        let all =
            distrusted.isEmpty
            ? all
            : all.map {
                var c = $0
                c.holderKeys.subtract(distrusted.keys)
                return c
            }
        // Placement escalation: a release under-replicated for longer than the patience gets one more puller in
        // rendezvous order per patience period (the ones ranked first may be down, full, or refusing).
        let r = policy.replicationFactor
        var under: [ContentHash: Double] = [:]
        for c in all where !c.held && c.otherHolders < r { under[c.id] = underReplicatedSince[c.id] ?? now }
        underReplicatedSince = under
        let keep = plan(all, live: live, now: now)
        let (retired, evictions) = evict(all, keep: keep, live: live)
        var actions: [MirrorAction] = []
        let restate = policy.holderTTLSeconds / 2
        for c in all where !retired.contains(c.id) {
            if c.held {
                // State what is held; restate before the statement ages out.
                if let s = c.stated, s.holds, now - s.at <= restate {
                } else {
                    actions.append(.state(c.id, holds: true))
                }
                if c.witnessable { actions.append(.cosign(c.id)) }
            } else if c.stated?.holds == true {
                // Stated as held but no longer held (a scrub dropped a damaged chunk, a kept release's eviction took
                // a shared file, or the store was lost and anti-entropy brought the old statement back): say so, or
                // others count this node as a holder until the statement ages out, and may evict their copies.
                actions.append(.state(c.id, holds: false))
            }
        }
        if pulling == nil,
            let next = all.first(where: {
                keep.contains($0.id) && !$0.held
                    && (lastFetchFailure[$0.id].map { now - $0 > Self.retrySeconds } ?? true)
            })
        {
            pulling = next.id
            actions.append(.pull(next.id))
        }
        actions += evictions
        let usage = Self.usage(all)
        return MirrorRound(plan: keep, usedStored: usage.stored, usedLogical: usage.logical, actions: actions)
    }

    /// A peer sent this node bytes that did not match their hash (the fetch refused them): its availability
    /// statements are not counted for `holderTTLSeconds`, so its claims neither stop a re-replication nor allow an
    /// eviction (`alexandria-sim --scenario mirror`, with a node that serves flipped bytes).
    public mutating func servedBadBytes(_ key: String, now: Double) { distrusted[key] = now }

    /// The pull `round` asked for ended; `ok` if every file of the release is in the store, verified.
    public mutating func pullFinished(_ id: ContentHash, ok: Bool, now: Double) {
        if pulling == id { pulling = nil }
        if ok {
            lastPull = now
            lastFetchFailure[id] = nil
        } else {
            lastFetchFailure[id] = now
        }
    }

    /// Whether to publish a demand report now, given this node's fetch counts (`"<manifest hex>:<count>"`, in a
    /// fixed order): at most every `demandReportSeconds`, only when the counts changed, or every ten periods to keep
    /// an unchanged report from ageing out. Records the report as sent when it says yes.
    public mutating func demandReportDue(_ summary: [String], now: Double) -> Bool {
        let since = now - lastDemandReport
        guard since >= policy.demandReportSeconds, !summary.isEmpty,
            summary != lastDemandSummary || since >= 10 * policy.demandReportSeconds
        else { return false }
        lastDemandReport = now
        lastDemandSummary = summary
        return true
    }

    // MARK: - Decisions

    /// What to keep: must-keeps, then under-replicated releases, then (mode `all`) the rest, most demanded first,
    /// newest first among equals (`all` is in catalog order, oldest first), while the budget lasts. The budget counts
    /// stored bytes (each chunk once), and logical bytes for what is not stored yet.
    public func plan(_ all: [MirrorRelease], live: Set<String> = [], now: Double = 0) -> Set<ContentHash> {
        var keep: Set<ContentHash> = []
        var total: UInt64 = 0
        var counted = Set<ContentHash>()
        let r = policy.replicationFactor
        // Under-replicated: fewer than R holders besides this node, whether it holds the release or not (counting
        // this node's copy only when held made a release at exactly R others rank as under-replicated while not held
        // and as surplus once pulled: a mirror over budget evicted it and pulled it again, round after round).
        func tier(_ c: MirrorRelease) -> Int { c.must ? 0 : (c.otherHolders < r ? 1 : 2) }
        let ordered = all.enumerated().sorted { a, b in
            let ka = tier(a.element)
            let kb = tier(b.element)
            if ka != kb { return ka < kb }
            if a.element.demand != b.element.demand { return a.element.demand > b.element.demand }
            return a.offset > b.offset
        }.map(\.element)
        for c in ordered {
            let underReplicated = c.otherHolders < r
            let wanted: Bool
            switch policy.mode {
            case .all: wanted = true
            case .factor:
                wanted = c.must || (underReplicated && (c.held || chosen(c, live: live, extra: escalation(c.id, now))))
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

    /// What to drop, only while over budget, in two steps: never a must-keep, never one the plan keeps, least demanded
    /// first. A victim is first *retired*: this node retracts its availability statement (it keeps the bytes and
    /// still serves them), so others see one holder fewer and re-replicate; it is removed once at least R other live
    /// holders state they hold it (or every other live node, in a network of R nodes or fewer), unless this node,
    /// still stating it holds it, is its designated keeper. A victim's
    /// files that a kept release also names stay. Returns the releases retired this round (not to be restated) and
    /// the actions.
    ///
    /// R other holders, not one: a statement is a claim, and the holder behind it may have lost its disk since, or hold
    /// a chunk that flipped and that no scrub has found yet; with a single other holder, evicting on its word lost the
    /// last intact copy (`alexandria-sim --scenario mirror --seed 2`). And retiring first, because a node that needs R
    /// others but is itself counted among the R would otherwise wait for ever, over budget (seed 1).
    func evict(
        _ all: [MirrorRelease], keep: Set<ContentHash>, live: Set<String>
    ) -> (retired: Set<ContentHash>, actions: [MirrorAction]) {
        var used = Self.usage(all).stored
        guard used > policy.budgetBytes else { return ([], []) }
        // How many held releases use each stored chunk: evicting one frees the chunks no other held release uses.
        var users: [ContentHash: Int] = [:]
        for c in all where c.held { for id in c.stored.keys { users[id, default: 0] += 1 } }
        // R other holders, or every other live node when the network is smaller than that (else a mirror in a
        // three-node network with R = 3 could never evict anything); at least one.
        let r = max(1, min(policy.replicationFactor, live.subtracting([selfHex]).count))
        let victims = all.filter { $0.held && !$0.must && !keep.contains($0.id) }.sorted { $0.demand < $1.demand }
        let keptFiles = Set(all.filter { keep.contains($0.id) }.flatMap(\.files))
        var out: [MirrorAction] = []
        var retired: Set<ContentHash> = []
        for v in victims where used > policy.budgetBytes {
            let stating = v.stated?.holds == true
            if v.otherHolders >= r && !(stating && isKeeper(v)) {
                out.append(.remove(v.id, files: v.files.filter { !keptFiles.contains($0) }))
                out.append(.state(v.id, holds: false))
            } else if stating && v.otherHolders < r {
                out.append(.state(v.id, holds: false))
            } else if v.otherHolders >= r || stating {
                continue  // the keeper: it stays, over budget, rather than risk the last copy
            }
            retired.insert(v.id)
            for (id, bytes) in v.stored.sorted(by: { $0.key < $1.key }) {
                users[id, default: 1] -= 1
                if users[id] == 0 { used -= min(used, bytes) }
            }
        }
        if out.contains(where: { if case .remove = $0 { true } else { false } }) { out.append(.collectGarbage) }
        return (retired, out)
    }

    /// The stored bytes of a release, each chunk counted once (`counted` carries the chunks already counted), plus
    /// what it still lacks.
    static func cost(_ c: MirrorRelease, counted: inout Set<ContentHash>) -> UInt64 {
        var total = c.pending
        for (id, bytes) in c.stored where counted.insert(id).inserted { total += bytes }
        return total
    }

    /// What the held releases take in the store (each chunk once), and their logical size.
    public static func usage(_ all: [MirrorRelease]) -> (stored: UInt64, logical: UInt64) {
        var counted = Set<ContentHash>()
        var stored: UInt64 = 0
        var logical: UInt64 = 0
        for c in all where c.held {
            stored += cost(c, counted: &counted)
            logical += c.size
        }
        return (stored, logical)
    }

    /// Pullers added to a release's rendezvous placement: one per `placementPatienceSeconds` it has stayed
    /// under-replicated.
    func escalation(_ id: ContentHash, _ now: Double) -> Int {
        guard let since = underReplicatedSince[id], policy.placementPatienceSeconds > 0 else { return 0 }
        return max(0, Int((now - since) / policy.placementPatienceSeconds))
    }

    /// A node's place for a release in rendezvous order: `SHA-256(manifest id || node key hex)`, lowest first.
    public static func rank(_ manifest: ContentHash, _ nodeKeyHex: String) -> ContentHash {
        ContentHash.of(manifest.bytes + Array(nodeKeyHex.utf8))
    }

    /// Rendezvous placement: of the live nodes that do not hold the release, the ones ranked first by
    /// `SHA-256(manifest id || node key hex)` make up the missing holders, so mirrors do not all pull at once.
    public func chosen(_ c: MirrorRelease, live: Set<String>, extra: Int = 0) -> Bool {
        let missing = policy.replicationFactor - c.otherHolders + extra
        guard missing > 0 else { return false }
        // Each rank hashed once (a sort comparing hashes computed in the comparator hashes 2 n log n times).
        let mine = Self.rank(c.id, selfHex)
        let ahead = live.subtracting(c.holderKeys).subtracting([selfHex]).count { Self.rank(c.id, $0) < mine }
        return ahead < missing
    }

    /// Of a release's holders (this node included), the one ranked first by `SHA-256(manifest id || node key hex)`
    /// never evicts it: holders that all see each other as "another holder" cannot all drop it at once.
    public func isKeeper(_ c: MirrorRelease) -> Bool {
        let mine = Self.rank(c.id, selfHex)
        return !c.holderKeys.contains { $0 != selfHex && Self.rank(c.id, $0) < mine }
    }
}
