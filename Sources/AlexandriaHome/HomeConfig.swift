import AlexandriaCore
import AlexandriaPeer
import AlexandriaStore
import AlexandriaStoreS3

/// The settings in `<home>/config.toml`. Unknown tables or keys are errors, so a typo never passes silently.
public struct HomeConfig: Sendable {
    /// `[store] budget`: the most the packs may hold; nil for no limit.
    public var storeBudget: UInt64?
    /// `[store] durability`: "os" or "fsync" (see `Durability`).
    public var durability: Durability = .os
    /// `[store] lock_timeout`: seconds to wait for another writer.
    public var lockTimeoutSeconds = 30
    /// `[store] chunk_average`: the chunker's average size, a power of two from 4 KiB to 4 MiB. Files are cut with
    /// the chunker in force when they are added; chunks only deduplicate against files cut the same way.
    public var chunker: ChunkerParameters = .v1
    /// `[store] backend = "s3"` with `endpoint`, `bucket`, `prefix`, `region`, `credentials_file` and
    /// `abort_uploads_after` (seconds; `gc` aborts older multipart uploads under the prefix): sealed packs
    /// live in that bucket (Protocol/store-s3.md). Nil (`backend = "local"`, the default) keeps them on local disk.
    public var s3: S3StoreSettings?
    /// `[store] pack_target`: the size at which a pack is sealed and a new one started (1 MiB to 16 GiB; compression on
    /// idle takes only sealed packs); nil for the backend's default
    /// (1 GiB on local disk, `S3StoreSettings.defaultPackTargetBytes` on s3, where a full pack starts uploading).
    public var packTargetBytes: Int?
    /// `[node] listen`: where `node run` accepts peers.
    public var listen = "127.0.0.1:7420"
    /// `[node] peers`: bootstrap peers, `host:port`.
    public var peers: [String] = []
    /// `[node] outbound` / `inbound`: outbound connections kept, inbound connections accepted at most.
    public var outbound = GossipSettings().outboundTarget
    public var inbound = GossipSettings().inboundCap
    /// `[node] clients` / `clients_per_address`: plain clients (fetches, listen port 0) kept at once, in all and
    /// from one IP address (Protocol/wire-v1.md, "Connection limits").
    public var clients = ClientAdmission.Limits().total
    public var clientsPerAddress = ClientAdmission.Limits().perAddress
    /// `[gossip] fanout`, `anti_entropy`, `peer_exchange` (see Protocol/gossip-v1.md).
    public var fanout = GossipSettings().fanout
    public var antiEntropySeconds = GossipSettings().antiEntropySeconds
    public var peerExchangeSeconds = GossipSettings().peerExchangeSeconds
    /// `[mirror] mode`: "all" (every release within budget, most demanded first), "factor" (only releases below the
    /// replication factor), "pinned" (only pins and mirrored publishers).
    public var mirrorMode = MirrorPolicy().mode.rawValue
    /// `[mirror] budget`: what the mirror's releases may take; nil for the default (a quarter of the free space,
    /// at most 50 GiB).
    public var mirrorBudget: UInt64?
    /// `[mirror] publishers`: publisher ids (8+ hex digits) whose every release is kept.
    public var mirrorPublishers: [String] = []
    /// `[mirror] replication_factor`: holders each release should have.
    public var replicationFactor = MirrorPolicy().replicationFactor
    /// `[mirror] interval`, `holder_ttl`, `demand_report`: seconds.
    public var mirrorIntervalSeconds = MirrorPolicy().intervalSeconds
    public var holderTTLSeconds = MirrorPolicy().holderTTLSeconds
    public var demandReportSeconds = MirrorPolicy().demandReportSeconds
    /// `[mirror] scrub_interval`: how often `node run` verifies every stored chunk and repairs damaged ones from peers
    /// ("7d", "12h", "30m", "90s" or seconds; "off" or 0: never). Weekly by default, like a ZFS or Ceph deep scrub.
    public var scrubIntervalSeconds = MirrorPolicy().scrubIntervalSeconds
    /// `[mirror] idle_compression`: the share of one core (0 to 1) `node run` may spend compressing stored packs the
    /// compressor has not seen, while it has nothing to replicate; 0: never (`gc` still compresses).
    public var idleCompressionShare = MirrorPolicy().idleCompressionShare
    /// `[trust] witnesses` and `quorum`: the witness keys whose cosignatures settle a conflict between two manifests
    /// for one release (Protocol/gossip-v1.md, "Which binding stands"). Empty by default: first-seen.
    public var trust: TrustPolicy = .firstSeen
    /// `[test] drop_peers_file`: a file of node keys (hex, one per line) whose traffic is dropped, re-read every
    /// second. For partition tests only.
    public var dropPeersFile: String?
    /// `[test] idle_timeout`: a shorter wire idle timeout than the spec's 60 s, so tests of it take seconds.
    public var testIdleTimeoutSeconds: Double?
    /// `[gateway] listen`: where `node run` serves HTTP (Protocol/gateway-v1.md); nil (the default) for no gateway.
    public var gatewayListen: String?
    /// `[gateway.aliases]`: repository owner names for publishers in the gateway, `name = "<64-hex publisher id>"`.
    public var gatewayAliases: [String: String] = [:]
    /// `[gateway] header_timeout`, `idle_timeout` (seconds) and `max_connections`; nil for the gateway's defaults.
    public var gatewayHeaderTimeout: Int?
    public var gatewayIdleTimeout: Int?
    public var gatewayMaxConnections: Int?

    public init() {}

    public static let defaultText = """
        # Alexandria node configuration. Flags given on the command line override these values.

        [store]
        # The most the store may hold on disk ("0" means no limit). Examples: "500 GiB", "2 TB".
        budget = "0"
        # "os": chunk bytes reach the page cache before the index commits (a crashed process loses nothing; a power
        #       loss can lose the newest chunks, which reads then report as missing rather than serve).
        # "fsync": every add syncs the packs to disk before it commits (durable across power loss; slower).
        durability = "os"
        # Seconds to wait for another process that is writing to the store.
        lock_timeout = 30
        # Average chunk size (a power of two, 4 KiB to 4 MiB). Changing it stops new files deduplicating against
        # files already stored; the default is what the network uses.
        chunk_average = "256 KiB"

        [node]
        # Where `alexandria node run` listens for peers (wire protocol v1; see Protocol/wire-v1.md).
        listen = "127.0.0.1:7420"
        # Peers to fetch from and connect to, as "host:port" (bootstrap: one is enough to find the rest).
        peers = []
        # Outbound connections kept open; inbound connections accepted at most.
        outbound = 8
        inbound = 64
        # Plain clients (fetches) served at once, in all and from one IP address.
        clients = 256
        clients_per_address = 16

        [gossip]
        # Peers each new catalog item is pushed to by every node that sees it first.
        fanout = 3
        # Seconds between anti-entropy rounds (set reconciliation with one random peer) and peer exchanges.
        anti_entropy = "1s"
        peer_exchange = "30s"

        [mirror]
        # "all": keep every release within the budget, most demanded first. "factor": only releases with fewer than
        # replication_factor live holders. "pinned": only pinned releases and the publishers below.
        mode = "all"
        # What the mirrored releases may take ("0": a quarter of the free disk space, at most 50 GiB).
        budget = "0"
        # Publisher ids whose every release is kept, whatever the budget.
        publishers = []
        replication_factor = 3
        # How often the node reads back every stored chunk and repairs damaged ones from peers ("off": never).
        scrub_interval = "7d"
        # Share of one core the node may spend compressing stored data while it has nothing to replicate (0: never).
        idle_compression = 0.25

        [trust]
        # Witness keys (other nodes' keys, as `alexandria status` prints them: "ed25519:<64 hex>") whose cosignatures
        # settle a conflict when a publisher signs two manifests for one release. With none listed, each node keeps
        # the manifest it saw first. A quorum of these that cosigned one side makes it stand on every node that lists
        # the same keys; keep quorum above half of the keys (the default when it is left out).
        witnesses = []

        """

    /// A long duration: a number of seconds with an optional unit (s, m, h, d); "off" and 0 are 0 (never).
    static func interval(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "off" { return 0 }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        let scale = t.last.flatMap { units[$0] } ?? 1
        let number = units[t.last ?? " "] == nil ? t : String(t.dropLast())
        guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value >= 0, value.isFinite else {
            return nil
        }
        return value * scale
    }

    public init(toml: TOMLDocument) throws {
        let known: [String: Set<String>] = [
            "": [],
            "store": [
                "budget", "durability", "lock_timeout", "chunk_average", "backend", "endpoint", "bucket", "prefix",
                "region", "credentials_file", "pack_target", "abort_uploads_after",
            ],
            "node": ["listen", "peers", "outbound", "inbound", "clients", "clients_per_address"],
            "gossip": ["fanout", "anti_entropy", "peer_exchange"],
            "mirror": [
                "mode", "budget", "publishers", "replication_factor", "interval", "holder_ttl", "demand_report",
                "scrub_interval", "idle_compression",
            ],
            "trust": ["witnesses", "quorum"],
            "test": ["drop_peers_file", "idle_timeout"],
            "gateway": ["listen", "header_timeout", "idle_timeout", "max_connections"],
        ]
        for (table, values) in toml.tables.sorted(by: { $0.key < $1.key }) where table != "gateway.aliases" {
            guard let keys = known[table] else {
                throw HomeError("[\(table)]: unknown table (known: \(known.keys.filter { !$0.isEmpty }.sorted()))")
            }
            for key in values.keys.sorted() where !keys.contains(key) {
                throw HomeError(
                    table.isEmpty
                        ? "\(key): unknown setting (settings go in a table such as [node])"
                        : "[\(table)] \(key): unknown setting (known in [\(table)]: \(keys.sorted().joined(separator: ", ")))"
                )
            }
        }
        switch toml["store", "budget"] {
        case nil: break
        case .string(let text)?:
            guard let bytes = ByteSize.parse(text) else { throw HomeError("[store] budget '\(text)' is not a size") }
            storeBudget = bytes == 0 ? nil : bytes
        case .integer(let n)? where n >= 0:
            storeBudget = n == 0 ? nil : UInt64(n)
        default: throw HomeError("[store] budget must be a size such as \"500 GiB\"")
        }
        switch toml["store", "durability"] {
        case nil: break
        case .string(let text)?:
            guard let d = Durability(rawValue: text) else {
                throw HomeError("[store] durability must be \"os\" or \"fsync\", not \"\(text)\"")
            }
            durability = d
        default: throw HomeError("[store] durability must be \"os\" or \"fsync\"")
        }
        switch toml["store", "chunk_average"] {
        case nil: break
        case .string(let text)?:
            guard let bytes = ByteSize.parse(text), bytes > 0, bytes.nonzeroBitCount == 1,
                let parameters = ChunkerParameters(averageBits: bytes.trailingZeroBitCount)
            else {
                throw HomeError("[store] chunk_average must be a power of two from 4 KiB to 4 MiB, not \"\(text)\"")
            }
            chunker = parameters
        default: throw HomeError("[store] chunk_average must be a size such as \"256 KiB\"")
        }
        switch toml["store", "pack_target"] {
        case nil: break
        case .string(let text)?:
            guard let bytes = ByteSize.parse(text), let n = Int(exactly: bytes), StoreLimits.packTargetRange.contains(n)
            else {
                throw HomeError("[store] pack_target must be a size from 1 MiB to 16 GiB, not \"\(text)\"")
            }
            packTargetBytes = n
        default: throw HomeError("[store] pack_target must be a size such as \"64 MiB\"")
        }
        switch toml["node", "listen"] {
        case nil: break
        case .string(let text)?: listen = text
        default: throw HomeError("[node] listen must be \"host:port\"")
        }
        switch toml["node", "peers"] {
        case nil: break
        case .array(let items)?:
            peers = try items.map { item in
                guard case .string(let s) = item else { throw HomeError("[node] peers must be strings \"host:port\"") }
                return s
            }
        default: throw HomeError("[node] peers must be an array of \"host:port\"")
        }
        try parseNetwork(toml)
        try parseGateway(toml)
        try parseObjectStore(toml)
        switch toml["store", "lock_timeout"] {
        case nil: break
        case .integer(let n)? where n >= 0 && n <= 86400: lockTimeoutSeconds = n
        default: throw HomeError("[store] lock_timeout must be a number of seconds (0...86400)")
        }
    }

    /// `[store] backend` and the object-storage keys beside it.
    mutating func parseObjectStore(_ toml: TOMLDocument) throws {
        func text(_ key: String) throws -> String? {
            switch toml["store", key] {
            case nil: return nil
            case .string(let s)?: return s
            default: throw HomeError("[store] \(key) must be a string")
            }
        }
        let backend = try text("backend") ?? "local"
        let keys = ["endpoint", "bucket", "prefix", "region", "credentials_file", "abort_uploads_after"]
        switch backend {
        case "local":
            for key in keys where toml["store", key] != nil {
                throw HomeError("[store] \(key) applies only with backend = \"s3\"")
            }
        case "s3":
            guard let endpoint = try text("endpoint"), endpoint.hasPrefix("http://") else {
                throw HomeError("[store] endpoint must be set for backend = \"s3\", as \"http://host:port\"")
            }
            guard let bucket = try text("bucket"), (3...63).contains(bucket.utf8.count),
                bucket.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46 })
            else {
                throw HomeError("[store] bucket must be set for backend = \"s3\": 3 to 63 of a-z, 0-9, '-' and '.'")
            }
            let prefix = try text("prefix") ?? ""
            guard prefix.isEmpty || (prefix.hasSuffix("/") && !prefix.hasPrefix("/") && !prefix.contains("//")) else {
                throw HomeError("[store] prefix must be empty or end in \"/\" (and not start with \"/\")")
            }
            var settings = S3StoreSettings(
                endpoint: endpoint, bucket: bucket, prefix: prefix, region: try text("region") ?? "us-east-1")
            settings.credentialsFile = try text("credentials_file")
            switch toml["store", "abort_uploads_after"] {
            case nil: break
            case .integer(let n)? where n >= 0 && n <= 30 * 86400: settings.abortUploadsAfterSeconds = Int64(n)
            default: throw HomeError("[store] abort_uploads_after must be a number of seconds (0...2592000)")
            }
            s3 = settings
        default:
            throw HomeError("[store] backend must be \"local\" or \"s3\", not \"\(backend)\"")
        }
    }

    /// The node, gossip and mirror tables.
    mutating func parseNetwork(_ toml: TOMLDocument) throws {
        func int(_ table: String, _ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            switch toml[table, key] {
            case nil: return nil
            case .integer(let n)? where range.contains(n): return n
            default: throw HomeError("[\(table)] \(key) must be a whole number in \(range)")
            }
        }
        func seconds(_ table: String, _ key: String) throws -> Double? {
            switch toml[table, key] {
            case nil: return nil
            case .integer(let n)? where n > 0 && n <= 86400: return Double(n)
            case .float(let d)? where d > 0 && d <= 86400: return d
            case .string(let text)?:
                let t = text.trimmingCharacters(in: .whitespaces)
                let value: Double? =
                    t.hasSuffix("ms")
                    ? Double(t.dropLast(2)).map { $0 / 1000 } : Double(t.hasSuffix("s") ? String(t.dropLast()) : t)
                guard let value, value > 0, value <= 86400 else {
                    throw HomeError("[\(table)] \(key) must be a duration such as \"2s\" or \"500ms\", not \"\(text)\"")
                }
                return value
            default: throw HomeError("[\(table)] \(key) must be a duration such as \"2s\"")
            }
        }
        func strings(_ table: String, _ key: String) throws -> [String]? {
            switch toml[table, key] {
            case nil: return nil
            case .array(let items)?:
                return try items.map { item in
                    guard case .string(let s) = item else { throw HomeError("[\(table)] \(key) must hold strings") }
                    return s
                }
            default: throw HomeError("[\(table)] \(key) must be an array of strings")
            }
        }
        outbound = try int("node", "outbound", 0...1024) ?? outbound
        inbound = try int("node", "inbound", 0...65536) ?? inbound
        clients = try int("node", "clients", 0...65536) ?? clients
        clientsPerAddress = try int("node", "clients_per_address", 1...65536) ?? clientsPerAddress
        fanout = try int("gossip", "fanout", 1...64) ?? fanout
        antiEntropySeconds = try seconds("gossip", "anti_entropy") ?? antiEntropySeconds
        peerExchangeSeconds = try seconds("gossip", "peer_exchange") ?? peerExchangeSeconds
        switch toml["mirror", "mode"] {
        case nil: break
        case .string(let m)? where ["all", "factor", "pinned"].contains(m): mirrorMode = m
        default: throw HomeError("[mirror] mode must be \"all\", \"factor\" or \"pinned\"")
        }
        switch toml["mirror", "budget"] {
        case nil: break
        case .string(let text)?:
            guard let bytes = ByteSize.parse(text) else { throw HomeError("[mirror] budget '\(text)' is not a size") }
            mirrorBudget = bytes == 0 ? nil : bytes
        case .integer(let n)? where n >= 0: mirrorBudget = n == 0 ? nil : UInt64(n)
        default: throw HomeError("[mirror] budget must be a size such as \"100 GiB\"")
        }
        mirrorPublishers = try strings("mirror", "publishers") ?? []
        for p in mirrorPublishers where p.count < 8 || !p.allSatisfy(\.isHexDigit) {
            throw HomeError("[mirror] publishers holds publisher ids (at least 8 hex digits), not \"\(p)\"")
        }
        replicationFactor = try int("mirror", "replication_factor", 1...64) ?? replicationFactor
        mirrorIntervalSeconds = try seconds("mirror", "interval") ?? mirrorIntervalSeconds
        holderTTLSeconds = try seconds("mirror", "holder_ttl") ?? holderTTLSeconds
        demandReportSeconds = try seconds("mirror", "demand_report") ?? demandReportSeconds
        switch toml["mirror", "scrub_interval"] {
        case nil: break
        case .integer(let n)? where n >= 0: scrubIntervalSeconds = Double(n)
        case .string(let text)?:
            guard let value = Self.interval(text) else {
                throw HomeError(
                    "[mirror] scrub_interval must be a duration such as \"7d\", \"12h\" or \"30m\", or \"off\"; not "
                        + "\"\(text)\"")
            }
            scrubIntervalSeconds = value
        default: throw HomeError("[mirror] scrub_interval must be a duration such as \"7d\", or \"off\"")
        }
        switch toml["mirror", "idle_compression"] {
        case nil: break
        case .float(let share)? where (0...1).contains(share): idleCompressionShare = share
        case .integer(let share)? where (0...1).contains(share): idleCompressionShare = Double(share)
        default:
            throw HomeError(
                "[mirror] idle_compression is the share of one core compression may use while the node is idle, "
                    + "from 0 (never) to 1; for example 0.25")
        }
        let quorum = try int("trust", "quorum", 0...1024)
        do {
            trust = try TrustPolicy(witnesses: strings("trust", "witnesses") ?? [], quorum: quorum)
        } catch let error as CoreError {
            throw HomeError("[trust] \(error.message)")
        }
        switch toml["test", "drop_peers_file"] {
        case nil: break
        case .string(let path)?: dropPeersFile = path
        default: throw HomeError("[test] drop_peers_file must be a path")
        }
        testIdleTimeoutSeconds = try seconds("test", "idle_timeout")
    }

    /// The `[gateway]` and `[gateway.aliases]` tables.
    mutating func parseGateway(_ toml: TOMLSubset) throws {
        switch toml["gateway", "listen"] {
        case nil: break
        case .string(let text)?: gatewayListen = text
        default: throw HomeError("[gateway] listen must be \"host:port\"")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            switch toml["gateway", key] {
            case nil: return nil
            case .integer(let n)? where range.contains(n): return n
            default: throw HomeError("[gateway] \(key) must be a whole number in \(range)")
            }
        }
        gatewayHeaderTimeout = try int("header_timeout", 1...3600)
        gatewayIdleTimeout = try int("idle_timeout", 1...86400)
        gatewayMaxConnections = try int("max_connections", 1...65536)
        for (name, value) in toml.tables["gateway.aliases"] ?? [:] {
            guard case .string(let id) = value, id.utf8.count == 64,
                id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
            else { throw HomeError("[gateway.aliases] \(name) must be a publisher id (64 lowercase hex digits)") }
            gatewayAliases[name] = id
        }
    }

    /// `message` with the line of the setting it is about, when it starts with "[table] key" (as every error of
    /// `init(toml:)` does) and the key is written on a line of its own.
    public static func locate(_ message: String, in toml: TOMLDocument) -> String {
        var table = ""
        var rest = Substring(message)
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            table = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...].drop { $0 == " " }
        }
        let key = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        let line =
            key.isEmpty || rest.hasPrefix(":")
            ? toml.line(table: table, key: nil) : toml.line(table: table, key: String(key))
        return line.map { "line \($0): \(message)" } ?? message
    }

    public var storeOptions: StoreOptions {
        var options = StoreOptions()
        options.budgetBytes = storeBudget
        options.durability = durability
        options.lockTimeoutSeconds = Double(lockTimeoutSeconds)
        options.chunker = chunker
        options.packTargetBytes =
            packTargetBytes ?? (s3 == nil ? StoreLimits.packTargetBytes : S3StoreSettings.defaultPackTargetBytes)
        options.busyTimeoutMilliseconds = Int32(min(lockTimeoutSeconds * 1000, Int(Int32.max)))
        return options
    }
}
