import CoreMetrics
import Foundation
import Prometheus

/// Every metric a node exports at `/metrics`, in one place: its Prometheus name, type and help text
/// (Protocol/gateway-v1.md lists them). Code records through the functions of `NodeMetrics`, never by name.
public enum NodeMetric: String, CaseIterable, Sendable {
    case servedBytes = "alexandria_served_bytes_total"
    case fetchedBytes = "alexandria_fetched_bytes_total"
    case chunksVerified = "alexandria_chunks_verified_total"
    case chunksFailed = "alexandria_chunks_failed_total"
    case peers = "alexandria_peers"
    case peersConnected = "alexandria_peers_connected"
    case gossipItems = "alexandria_gossip_items_total"
    case gossipMessages = "alexandria_gossip_messages_total"
    case gossipBytes = "alexandria_gossip_bytes_total"
    case replicationLag = "alexandria_replication_lag_seconds"
    case replicationPending = "alexandria_replication_pending_releases"
    case storeStoredBytes = "alexandria_store_stored_bytes"
    case storeBudgetBytes = "alexandria_store_budget_bytes"
    case catalogReleases = "alexandria_catalog_releases"
    case catalogItems = "alexandria_catalog_items"
    case httpRequestDuration = "alexandria_http_request_duration_seconds"
    case peerRequestDuration = "alexandria_peer_request_duration_seconds"

    public var help: String {
        switch self {
        case .servedBytes: "Bytes of content sent, by way (http: gateway response bodies; peer: CHUNK payloads)."
        case .fetchedBytes: "Verified chunk bytes (decoded) received from peers: replication and pull-through."
        case .chunksVerified: "Chunks whose SHA-256 matched their id, by where the bytes came from (store, peer)."
        case .chunksFailed: "Chunks whose bytes did not hash to their id, by where they came from (store, peer)."
        case .peers: "Peers by state: connected, backoff (last dial failed), banned, idle (known, not connected)."
        case .peersConnected: "Connected gossip peers, by who dialled (outbound: this node)."
        case .gossipItems:
            "Catalog items received or made, by kind and outcome (added, conflict, pending, "
                + "duplicate, stale, refused, invalid)."
        case .gossipMessages: "Gossip messages, by direction (sent, received) and type."
        case .gossipBytes: "Gossip message bytes on the wire (frame headers included), by direction."
        case .replicationLag:
            "Seconds since the mirror first planned the oldest release it still does not hold "
                + "(0 when it holds every planned release)."
        case .replicationPending: "Releases the mirror plans to keep but does not hold yet."
        case .storeStoredBytes: "Bytes the store's chunks take on disk (after compression; linked files excluded)."
        case .storeBudgetBytes: "The mirror's budget for stored release bytes."
        case .catalogReleases: "Release manifests in this node's catalog."
        case .catalogItems: "Gossip items in this node's catalog."
        case .httpRequestDuration: "Gateway request time from request head to response end, by route set and status."
        case .peerRequestDuration: "Time to answer one wire request from a peer, by message type."
        }
    }

    public var type: String {
        switch self {
        case .servedBytes, .fetchedBytes, .chunksVerified, .chunksFailed, .gossipItems, .gossipMessages,
            .gossipBytes:
            "counter"
        case .peers, .peersConnected, .replicationLag, .replicationPending, .storeStoredBytes, .storeBudgetBytes,
            .catalogReleases, .catalogItems:
            "gauge"
        case .httpRequestDuration, .peerRequestDuration: "histogram"
        }
    }
}

/// Recording and exporting a node's metrics through swift-metrics, exported by swift-prometheus.
///
/// `MetricsSystem.bootstrap` may run once per process: only `bootstrap()` calls it, once, however often and from
/// however many threads it is called (a `static let`). Recording before or without it goes to swift-metrics' no-op
/// handler, so library code and tests that never bootstrap record nothing and cannot crash. Handles are looked up on
/// each use (the registry returns the existing series), so nothing is bound to the no-op handler for good.
public enum NodeMetrics {
    /// The process's registry. The first access bootstraps swift-metrics with it.
    private static let shared: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = latencyBuckets
        MetricsSystem.bootstrap(factory)
        // The series with fixed labels start at zero, so a rate over them is defined before the first event.
        for via in [Via.http, .peer] { served(bytes: 0, via: via) }
        fetched(bytes: 0)
        for source in [ChunkSource.store, .peer] {
            Counter(label: NodeMetric.chunksVerified.rawValue, dimensions: [("source", source.rawValue)]).increment(
                by: 0)
            Counter(label: NodeMetric.chunksFailed.rawValue, dimensions: [("source", source.rawValue)]).increment(by: 0)
        }
        return registry
    }()

    /// Latency buckets for both histograms: 1 ms to 10 s.
    public static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10),
    ]

    /// Bootstraps swift-metrics with a Prometheus registry (once per process) and returns that registry.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry { shared }

    // MARK: - Recording

    public enum Via: String, Sendable { case http, peer }
    public enum ChunkSource: String, Sendable { case store, peer }

    public static func served(bytes: Int, via: Via) {
        Counter(label: NodeMetric.servedBytes.rawValue, dimensions: [("via", via.rawValue)]).increment(by: bytes)
    }

    public static func fetched(bytes: Int) {
        Counter(label: NodeMetric.fetchedBytes.rawValue).increment(by: bytes)
    }

    /// One chunk's SHA-256 checked against its id.
    public static func chunk(verified: Bool, source: ChunkSource) {
        let metric: NodeMetric = verified ? .chunksVerified : .chunksFailed
        Counter(label: metric.rawValue, dimensions: [("source", source.rawValue)]).increment()
    }

    /// A catalog item offered to the catalog (`kind` and `outcome` come from fixed sets).
    public static func gossipItem(kind: String, outcome: String) {
        Counter(label: NodeMetric.gossipItems.rawValue, dimensions: [("kind", kind), ("outcome", outcome)])
            .increment()
    }

    /// A gossip message sent or received (`type` from a fixed set), with its size on the wire.
    public static func gossipMessage(sent: Bool, type: String, bytes: Int) {
        let direction = sent ? "sent" : "received"
        Counter(label: NodeMetric.gossipMessages.rawValue, dimensions: [("direction", direction), ("type", type)])
            .increment()
        Counter(label: NodeMetric.gossipBytes.rawValue, dimensions: [("direction", direction)]).increment(by: bytes)
    }

    /// A gateway request answered: `route` names the route set (a type name), `status` the HTTP code.
    public static func httpRequest(route: String, status: Int, duration: Duration) {
        Timer(
            label: NodeMetric.httpRequestDuration.rawValue, dimensions: [("route", route), ("code", String(status))]
        ).recordNanoseconds(duration.nanoseconds)
    }

    /// A peer's wire request answered (`type` from a fixed set).
    public static func peerRequest(type: String, duration: Duration) {
        Timer(label: NodeMetric.peerRequestDuration.rawValue, dimensions: [("type", type)])
            .recordNanoseconds(duration.nanoseconds)
    }

    /// Sets a gauge (optionally one series of it).
    public static func set(_ metric: NodeMetric, _ value: Double, _ dimensions: [(String, String)] = []) {
        precondition(metric.type == "gauge", "\(metric.rawValue) is not a gauge")
        Gauge(label: metric.rawValue, dimensions: dimensions).record(value)
    }

    // MARK: - Exporting

    /// The Prometheus text exposition (format 0.0.4) of `registry`: families sorted by name, each with the `# HELP`
    /// line from `NodeMetric` before its `# TYPE` line (swift-metrics' factory registers series without help text).
    public static func exposition(_ registry: PrometheusCollectorRegistry) -> [UInt8] {
        let text = registry.emitToString()
        var families: [(name: String, lines: [Substring])] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                families.append((String(name), []))
                if let metric = NodeMetric(rawValue: String(name)) {
                    families[families.count - 1].lines.append("# HELP \(name) \(metric.help)")
                }
            } else if line.hasPrefix("#") || families.isEmpty {
                continue
            }
            families[families.count - 1].lines.append(line)
        }
        var out = ""
        for family in families.sorted(by: { $0.name < $1.name }) {
            for line in family.lines {
                out += line
                out += "\n"
            }
        }
        return Array(out.utf8)
    }

    /// The content type of `exposition`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
