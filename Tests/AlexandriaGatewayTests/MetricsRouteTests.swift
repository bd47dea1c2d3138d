import AlexandriaMetrics
import NIOHTTP1
import Prometheus
import Synchronization
import Testing

@testable import AlexandriaGateway

@Suite("Metric definitions, the exposition and the /metrics route")
struct MetricsRouteTests {
    @Test func everyMetricFollowsPrometheusNamingAndHasHelp() {
        for metric in NodeMetric.allCases {
            let name = metric.rawValue
            #expect(name.hasPrefix("alexandria_"), "\(name)")
            #expect(name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }, "\(name)")
            switch metric.type {
            case "counter": #expect(name.hasSuffix("_total"), "\(name)")
            case "histogram": #expect(name.hasSuffix("_seconds"), "\(name)")
            default:
                #expect(metric.type == "gauge")
                #expect(!name.hasSuffix("_total"), "\(name)")
            }
            #expect(!metric.help.isEmpty && !metric.help.contains("\n") && !metric.help.contains("\\"), "\(name)")
        }
    }

    /// `MetricsSystem.bootstrap` crashes when called twice: `bootstrap()` calls it once however many callers race.
    @Test func bootstrapIsOncePerProcessUnderConcurrentCallers() async {
        let registries = await withTaskGroup(of: ObjectIdentifier.self) { group in
            for _ in 0..<32 { group.addTask { ObjectIdentifier(NodeMetrics.bootstrap()) } }
            var out: Set<ObjectIdentifier> = []
            for await id in group { out.insert(id) }
            return out
        }
        #expect(registries.count == 1)
    }

    /// Families sorted by name, `# HELP` from the definition table before each `# TYPE`, series unchanged.
    @Test func expositionAddsHelpAndSortsFamilies() {
        // Registered as swift-metrics registers them (through the factory, so without help text).
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        factory.makeRecorder(label: "alexandria_store_stored_bytes", dimensions: [], aggregate: false).record(42.0)
        factory.makeCounter(label: "alexandria_served_bytes_total", dimensions: [("via", "http")]).increment(by: 7)
        factory.makeCounter(label: "other_total", dimensions: []).increment(by: 1)
        let text = String(decoding: NodeMetrics.exposition(registry), as: UTF8.self)
        #expect(
            text == """
                # HELP alexandria_served_bytes_total \(NodeMetric.servedBytes.help)
                # TYPE alexandria_served_bytes_total counter
                alexandria_served_bytes_total{via="http"} 7
                # HELP alexandria_store_stored_bytes \(NodeMetric.storeStoredBytes.help)
                # TYPE alexandria_store_stored_bytes gauge
                alexandria_store_stored_bytes 42.0
                # TYPE other_total counter
                other_total 1

                """, "\(text)")
    }

    @Test func routeAnswersOnlyMetricsAndRefreshesGaugesFirst() async throws {
        let registry = PrometheusCollectorRegistry()
        let refreshed = Mutex(0)
        let route = MetricsRoutes(registry: registry) {
            refreshed.withLock { $0 += 1 }
            PrometheusMetricsFactory(registry: registry)
                .makeRecorder(label: "alexandria_catalog_releases", dimensions: [], aggregate: false).record(3.0)
        }
        for path in ["/", "/metrics/", "/metrics/x", "/metricsx", "/sha256/metrics"] {
            let answer = try await route.respond(to: Self.request(path))
            #expect(answer == nil, "\(path)")
        }
        #expect(refreshed.withLock { $0 } == 0)
        let r = try #require(try await route.respond(to: Self.request("/metrics?x=1")))
        #expect(refreshed.withLock { $0 } == 1)
        #expect(r.status == HTTPResponseStatus.ok)
        #expect(r.headers["Content-Type"] == ["text/plain; version=0.0.4; charset=utf-8"])
        guard case .bytes(let body) = r.body else {
            Issue.record("not a byte body")
            return
        }
        #expect(String(decoding: body, as: UTF8.self).contains("\nalexandria_catalog_releases 3.0\n"))
        #expect(route.metricsName == "metrics")
    }

    static func request(_ uri: String) -> GatewayRequest {
        GatewayRequest(method: .GET, uri: uri, target: RequestTarget(uri)!, headers: [:])
    }
}
