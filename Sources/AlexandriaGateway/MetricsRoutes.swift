import AlexandriaCatalog
import AlexandriaMetrics
import AlexandriaPeer
import AlexandriaStore
import NIOHTTP1
import Prometheus
import Synchronization

/// `GET`/`HEAD /metrics`: the node's metrics in the Prometheus text format (version 0.0.4), as `NodeMetrics` defines
/// them. Counters and histograms are kept as things happen; gauges (peers, store, catalog) are read by `refresh` at
/// each scrape, so they are never older than the answer.
public struct MetricsRoutes: GatewayRoutes {
    let registry: PrometheusCollectorRegistry
    let refresh: @Sendable () async -> Void

    public init(registry: PrometheusCollectorRegistry, refresh: @escaping @Sendable () async -> Void) {
        self.registry = registry
        self.refresh = refresh
    }

    /// Most seconds the store's stored-bytes gauge may be old: summing it scans the store's chunk index (one SQL
    /// aggregate over every chunk), so scrapes, however frequent, run that scan at most once per this interval.
    public static let storeUsageMaxAgeSeconds = 5.0

    /// The route for a node: `refresh` sets the peer gauges from `gossip`, the store's stored bytes (at most
    /// `storeUsageMaxAgeSeconds` old) and the catalog's counts (one SQL count each).
    public static func node(
        registry: PrometheusCollectorRegistry, store: ContentStore, catalog: Catalog, gossip: GossipNode
    ) -> MetricsRoutes {
        let lastUsage = Mutex<ContinuousClock.Instant?>(nil)
        return MetricsRoutes(registry: registry) {
            await gossip.recordMetrics()
            let now = ContinuousClock.now
            let due = lastUsage.withLock { last in
                guard last.map({ now - $0 >= .seconds(storeUsageMaxAgeSeconds) }) ?? true else { return false }
                last = now
                return true
            }
            if due, let usage = try? store.usage() { NodeMetrics.set(.storeStoredBytes, Double(usage.storedBytes)) }
            NodeMetrics.set(.catalogReleases, Double(catalog.releaseCount))
            NodeMetrics.set(.catalogItems, Double(catalog.itemCount))
        }
    }

    public func respond(to request: GatewayRequest) async throws -> GatewayResponse? {
        guard request.target.segments == ["metrics"] else { return nil }
        await refresh()
        return GatewayResponse(
            headers: ["Content-Type": NodeMetrics.contentType, "Cache-Control": "no-store"],
            body: .bytes(NodeMetrics.exposition(registry)))
    }
}

extension GatewayRoutes {
    /// The route set's name in `alexandria_http_request_duration_seconds{route=...}`: its type name without
    /// `Routes`, lowercased (`hash`, `hub`, `oci`, `metrics`). A bounded set: one value per route type.
    public var metricsName: String {
        var name = String(describing: type(of: self))
        if name.hasSuffix("Routes") { name.removeLast(6) }
        return name.lowercased()
    }
}
