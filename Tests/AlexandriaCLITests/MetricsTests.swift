import AlexandriaCore
import Foundation
import Testing

/// A real Prometheus server (Debian's `prometheus`) on loopback, scraping the given targets every second.
final class PrometheusServer {
    let process: Process
    let port = Int.random(in: 20_000...60_000)
    let directory: String

    static let binary = "/usr/bin/prometheus"

    init(targets: [Int]) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw CLIFailure("prometheus is not installed: apt-get install prometheus (Tests/run.sh installs it)")
        }
        directory = FileManager.default.temporaryDirectory.path + "/alexandria-prometheus-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: alexandria
                static_configs:
                  - targets: [\(targets.map { "'127.0.0.1:\($0)'" }.joined(separator: ", "))]
            """
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = [
            "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try GatewayFixture.waitForHTTP(port: port)
        // It listens before its storage is open, answering 503 until then: wait for /-/ready.
        let deadline = Date().addingTimeInterval(30)
        while try RawHTTP.get(port: port, "/-/ready").status != 200 {
            guard Date() < deadline, p.isRunning else { throw CLIFailure("prometheus did not become ready") }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// The values of an instant query, by the `instance` label (the node's gateway port).
    func query(_ promQL: String) throws -> [Int: Double] {
        let encoded = promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let r = try RawHTTP.get(port: port, "/api/v1/query?query=\(encoded)")
        guard r.status == 200, let json = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
            json["status"] as? String == "success", let data = json["data"] as? [String: Any],
            let result = data["result"] as? [[String: Any]]
        else { throw CLIFailure("query \(promQL) failed: \(r.status) \(String(decoding: r.body, as: UTF8.self))") }
        var out: [Int: Double] = [:]
        for series in result {
            let labels = series["metric"] as? [String: String] ?? [:]
            let port = labels["instance"].flatMap { $0.split(separator: ":").last }.flatMap { Int($0) } ?? 0
            if let value = series["value"] as? [Any], let text = value.last as? String, let v = Double(text) {
                out[port] = v
            }
        }
        return out
    }

    /// Polls `promQL` until `accept` holds for its values (Prometheus has scraped what happened), up to `seconds`.
    func wait(
        _ promQL: String, seconds: Double = 30, until accept: ([Int: Double]) -> Bool
    ) throws -> [Int: Double] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [Int: Double] = [:]
        while Date() < deadline {
            last = try query(promQL)
            if accept(last) { return last }
            Thread.sleep(forTimeInterval: 0.25)
        }
        return last
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("/metrics scraped by a real Prometheus", .serialized)
struct MetricsTests {
    /// Two nodes, the second replicating the first's release; a fetch through the first's gateway. Prometheus
    /// scrapes both every second; the test asserts on what its query API returns, and `promtool check metrics`
    /// passes both nodes' answers.
    @Test func prometheusSeesServedFetchedVerifiedPeersAndReplication() throws {
        let data = randomBytes(3 << 20, seed: 131)
        let a = try GatewayFixture(files: ["model.bin": data])
        defer { a.stop() }
        let b = CLI()
        _ = try b.run("init")
        let bHTTP = Int.random(in: 20_000...60_000)
        let bNode = try NodeProcess(cli: b, extra: ["--peer", a.node.address, "--http", "127.0.0.1:\(bHTTP)"])
        defer {
            bNode.stop()
            b.cleanUp()
        }
        try GatewayFixture.waitForHTTP(port: bHTTP)
        let prometheus = try PrometheusServer(targets: [a.httpPort, bHTTP])
        defer { prometheus.stop() }

        let up = try prometheus.wait("up") { $0[a.httpPort] == 1 && $0[bHTTP] == 1 }
        #expect(up[a.httpPort] == 1 && up[bHTTP] == 1, "\(up)")

        // A fetch through A's gateway: exactly the file's bytes served over HTTP, every chunk verified on read.
        let hex = ContentHash.of(data).hex
        let got = try RawHTTP.get(port: a.httpPort, "/sha256/\(hex)")
        #expect(got.status == 200 && got.body == data)
        let size = Double(data.count)
        let served = try prometheus.wait("alexandria_served_bytes_total{via=\"http\"}") { $0[a.httpPort] == size }
        #expect(served[a.httpPort] == size, "\(served)")
        let verified = try prometheus.wait("alexandria_chunks_verified_total{source=\"store\"}") {
            ($0[a.httpPort] ?? 0) >= 1
        }
        #expect((verified[a.httpPort] ?? 0) >= 1, "\(verified)")
        let hashRoute = try prometheus.wait(
            "sum by (instance) (alexandria_http_request_duration_seconds_count{route=\"hash\",code=\"200\"})"
        ) { $0[a.httpPort] == 1 }
        #expect(hashRoute[a.httpPort] == 1, "\(hashRoute)")

        // The two nodes are connected: one peer each.
        let peers = try prometheus.wait("alexandria_peers{state=\"connected\"}") {
            $0[a.httpPort] == 1 && $0[bHTTP] == 1
        }
        #expect(peers[a.httpPort] == 1 && peers[bHTTP] == 1, "\(peers)")
        let connected = try prometheus.wait("sum by (instance) (alexandria_peers_connected)") {
            $0[a.httpPort] == 1 && $0[bHTTP] == 1
        }
        #expect(connected[a.httpPort] == 1 && connected[bHTTP] == 1, "\(connected)")

        // B learns the release by gossip and replicates it: fetched from A, verified chunk by chunk, served by A.
        let releases = try prometheus.wait("alexandria_catalog_releases") { $0[bHTTP] == 1 }
        #expect(releases[bHTTP] == 1 && releases[a.httpPort] == 1, "\(releases)")
        let added = try prometheus.wait("sum by (instance) (alexandria_gossip_items_total{outcome=\"added\"})") {
            ($0[bHTTP] ?? 0) >= 3
        }
        #expect((added[bHTTP] ?? 0) >= 3, "publisher key, log entry and manifest at least: \(added)")
        let fetched = try prometheus.wait("alexandria_fetched_bytes_total") { $0[bHTTP] == size }
        #expect(fetched[bHTTP] == size, "\(fetched)")
        let fromPeer = try prometheus.wait("alexandria_chunks_verified_total{source=\"peer\"}") {
            ($0[bHTTP] ?? 0) >= 1
        }
        #expect((fromPeer[bHTTP] ?? 0) >= 1, "\(fromPeer)")
        let failed = try prometheus.query("sum by (instance) (alexandria_chunks_failed_total)")
        #expect(failed[a.httpPort] == 0 && failed[bHTTP] == 0, "\(failed)")
        let toPeer = try prometheus.wait("alexandria_served_bytes_total{via=\"peer\"}") {
            ($0[a.httpPort] ?? 0) >= size / 2
        }
        #expect((toPeer[a.httpPort] ?? 0) >= size / 2, "chunk payloads (compressible ones smaller): \(toPeer)")
        let pending = try prometheus.wait("alexandria_replication_pending_releases") { $0[bHTTP] == 0 }
        #expect(pending[bHTTP] == 0, "\(pending)")
        let lag = try prometheus.wait("alexandria_replication_lag_seconds") { $0[bHTTP] == 0 }
        #expect(lag[bHTTP] == 0, "\(lag)")
        let stored = try prometheus.wait("alexandria_store_stored_bytes") { ($0[bHTTP] ?? 0) > 0 }
        #expect((stored[bHTTP] ?? 0) > 0 && (stored[bHTTP] ?? 0) <= size * 1.01, "\(stored)")
        let budget = try prometheus.query("alexandria_store_budget_bytes")
        #expect((budget[bHTTP] ?? 0) > 0, "\(budget)")
        let peerRequests = try prometheus.wait(
            "sum by (instance) (alexandria_peer_request_duration_seconds_count{type=\"get_chunks\"})"
        ) { ($0[a.httpPort] ?? 0) >= 1 }
        #expect((peerRequests[a.httpPort] ?? 0) >= 1, "\(peerRequests)")

        // The exposition itself passes Prometheus's own linter.
        for port in [a.httpPort, bHTTP] {
            let r = try RawHTTP.get(port: port, "/metrics")
            #expect(r.status == 200)
            #expect(r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            let check = try promtool(["check", "metrics"], stdin: r.body)
            #expect(check.status == 0 && check.output.isEmpty, "promtool: \(check.output)")
        }
    }

    /// Runs Debian's `promtool` with `stdin`; its exit status and everything it printed.
    func promtool(_ arguments: [String], stdin: [UInt8]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = arguments
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = output
        try p.run()
        input.fileHandleForWriting.write(Data(stdin))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }
}
