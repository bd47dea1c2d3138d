import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import Foundation
import Testing

@Suite("The cost of one /metrics answer with many releases in the catalog", .serialized)
struct ScrapeCostTests {
    /// Releases in the catalog: 100 by default (CI), `ALEXANDRIA_SCRAPE_RELEASES` for the figure
    /// (Benchmarks/metrics.sh sets 10000).
    static let releases = ProcessInfo.processInfo.environment["ALEXANDRIA_SCRAPE_RELEASES"].flatMap { Int($0) } ?? 100

    /// Fills a home's catalog with signed releases (10 per publisher, each in its publisher's log with a signed
    /// checkpoint, as `publish` commits them; their files are not in the store), starts the node with its gateway,
    /// and times `/metrics` against a trivial endpoint (`404` for an unknown path) in alternation on the same node.
    /// Prints the figure; fails if a scrape takes more than 20 times the trivial request plus 50 ms.
    @Test func scrapeTimeAgainstATrivialRequest() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let started = Date()
        try Self.fill(catalogAt: cli.home + "/catalog.sqlite", releases: Self.releases)
        let filled = Date().timeIntervalSince(started)
        let httpPort = Int.random(in: 20_000...60_000)
        let node = try NodeProcess(cli: cli, extra: ["--http", "127.0.0.1:\(httpPort)"])
        defer { node.stop() }
        try GatewayFixture.waitForHTTP(port: httpPort)
        // The mirror's first round verifies every manifest once (it then plans them all: none is held); measuring
        // during it would measure that. The round is over when it has set the pending-releases gauge.
        let deadline = Date().addingTimeInterval(Double(Self.releases) / 5 + 30)
        while Date() < deadline {
            let text = String(decoding: try RawHTTP.get(port: httpPort, "/metrics").body, as: UTF8.self)
            if text.contains("\nalexandria_replication_pending_releases \(Self.releases).0\n") { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let settled = Date().timeIntervalSince(started) - filled
        for _ in 0..<5 { _ = try RawHTTP.get(port: httpPort, "/metrics") }
        let body = String(decoding: try RawHTTP.get(port: httpPort, "/metrics").body, as: UTF8.self)
        #expect(body.contains("\nalexandria_catalog_releases \(Self.releases).0\n"))
        #expect(body.contains("\nalexandria_replication_pending_releases \(Self.releases).0\n"))

        // The node's own histogram: time from request head to response end, without the client's connect; read
        // before and after the timed requests, so only they count.
        func histogram() throws -> (Double, Double, Double, Double) {
            let text = String(decoding: try RawHTTP.get(port: httpPort, "/metrics").body, as: UTF8.self)
            func series(_ name: String) -> Double {
                text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
                    .flatMap { Double($0.split(separator: " ")[1]) } ?? 0
            }
            let m = "alexandria_http_request_duration_seconds_%@{route=\"metrics\",code=\"200\"}"
            let n = "alexandria_http_request_duration_seconds_%@{route=\"none\",code=\"404\"}"
            return (
                series(String(format: m, "sum")), series(String(format: m, "count")), series(String(format: n, "sum")),
                series(String(format: n, "count"))
            )
        }
        let before = try histogram()
        var scrape: [Double] = []
        var trivial: [Double] = []
        for _ in 0..<40 {
            var t = Date()
            let m = try RawHTTP.get(port: httpPort, "/metrics")
            scrape.append(Date().timeIntervalSince(t))
            t = Date()
            let n = try RawHTTP.get(port: httpPort, "/no-such-endpoint")
            trivial.append(Date().timeIntervalSince(t))
            #expect(m.status == 200 && n.status == 404)
        }
        let after = try histogram()
        let serverScrape = (after.0 - before.0) / (after.1 - before.1)
        let serverTrivial = (after.2 - before.2) / (after.3 - before.3)
        let last = String(decoding: try RawHTTP.get(port: httpPort, "/metrics").body, as: UTF8.self)
        let (s, b) = (median(scrape), median(trivial))
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
        print(
            String(
                format:
                    "scrape_cost: %d releases (catalog filled in %.1f s, mirror's first round %.1f s); /metrics median %.2f ms (p90 %.2f), "
                    + "trivial 404 median %.2f ms (p90 %.2f), ratio %.2f; server-side mean %.2f ms vs %.2f ms; "
                    + "/metrics body %d bytes; load %@",
                Self.releases, filled, settled, s * 1000, p90(scrape) * 1000, b * 1000, p90(trivial) * 1000, s / b,
                serverScrape * 1000, serverTrivial * 1000, last.utf8.count, String(load)))
        #expect(s <= 20 * b + 0.05, "a scrape took \(s) s against \(b) s for a trivial request")
    }

    /// Releases per publisher: each commit replays its publisher's log, so long logs would make filling quadratic.
    static let perPublisher = 10

    static func fill(catalogAt path: String, releases: Int) throws {
        let catalog = try Catalog(path: path, witnessKey: nil)
        var made = 0
        while made < releases {
            let key = PublisherKey.generate()
            try catalog.register(publisherKey: key.publicKey)
            guard var log = try catalog.log(key.id) else { throw CLIFailure("no log for a registered publisher") }
            for _ in 0..<min(Self.perPublisher, releases - made) {
                let name = "model\(made)"
                let manifest = try Manifest(
                    publisher: key.id, name: name, version: "1", logIndex: log.size,
                    files: [
                        Manifest.File(
                            path: "model.safetensors", size: 1000, sha256: ContentHash.of(Array(name.utf8)),
                            merkleRoot: ContentHash.of(Array((name + "root").utf8)), chunks: 1, chunker: .v1)
                    ], lineage: [], license: "apache-2.0", modelCard: nil, created: "2026-11-30T00:00:00Z")
                let signed = try SignedManifest(manifest: manifest, key: key)
                let entry = try SignedLogEntry.sign(
                    try LogEntry(
                        publisher: key.id, index: log.size, kind: .publish, release: "\(name)@1", manifest: signed.id),
                    key: key)
                try log.append(entry.envelope)
                try catalog.commit(
                    entry: entry.envelope, manifest: signed.envelope, checkpoint: try log.checkpoint(signedWith: key))
                made += 1
            }
        }
        catalog.checkpoint()
    }

    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
    func p90(_ xs: [Double]) -> Double { xs.sorted()[xs.count * 9 / 10] }
}
