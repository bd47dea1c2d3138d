import AlexandriaCore
import Foundation
import Testing

/// Issue 13 §4: a mirror's budget and sizes count what its store holds (compressed, each chunk once), not the
/// releases' logical sizes; `status` shows both.
@Suite("Mirror budget in stored bytes", .serialized)
struct StoredBudgetTests {
    @Test func twoReleasesSharingTheirWeightsFitABudgetTheirLogicalSizeExceeds() throws {
        let origin = CLI()
        let mirror = CLI()
        defer {
            origin.cleanUp()
            mirror.cleanUp()
        }
        _ = try origin.run("init")
        _ = try mirror.run("init")
        _ = try origin.run("keys", "generate", "acme")
        // Two releases with the same 2 MiB of weights: 4 MiB of content, 2 MiB stored.
        let weights = randomBytes(2 << 20, seed: 77)
        for version in ["1.0", "1.1"] {
            _ = try origin.write(weights, to: "m\(version)/model.safetensors")
            let dir =
                (try origin.write(Array("{\"v\": \"\(version)\"}".utf8), to: "m\(version)/config.json") as NSString)
                .deletingLastPathComponent
            let out = try origin.run("publish", dir, "--name", "tiny", "--version", version)
            #expect(out.status == 0, "\(out.stderr)")
        }
        // A 3 MiB budget: both releases fit as stored (2 MiB), not as logical bytes (4 MiB).
        let config = try String(contentsOfFile: mirror.home + "/config.toml", encoding: .utf8)
        let parts = config.components(separatedBy: "[mirror]\n")
        try #require(parts.count == 2)
        let edited =
            parts[0] + "[mirror]\n"
            + parts[1].replacingOccurrences(of: "budget = \"0\"", with: "budget = \"3 MiB\"")
        try edited.write(toFile: mirror.home + "/config.toml", atomically: true, encoding: .utf8)
        let source = try NodeProcess(cli: origin)
        defer { source.stop() }
        let node = try NodeProcess(cli: mirror, extra: ["--peer", source.address])
        defer { node.stop() }

        var state: [String: String] = [:]
        var status: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            let out = try mirror.run("status", "--json")
            status = (try? JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]) ?? [:]
            state = ((status["node"] as? [String: Any])?["mirror"] as? [String: String]) ?? [:]
            if state["releasesHeld"] == "2" { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        #expect(state["releasesHeld"] == "2", "\(state)")
        #expect(state["budget"] == "\(3 << 20)", "\(state)")
        let used = UInt64(state["used"] ?? "") ?? 0
        let logical = UInt64(state["usedLogical"] ?? "") ?? 0
        let packs = status["packBytes"] as? UInt64 ?? UInt64(status["packBytes"] as? Int ?? 0)
        // Stored: the weights once (plus record headers and the configs), within what the packs hold.
        #expect(used >= 2 << 20 && used <= packs && used < 3 << 20, "used \(used), packs \(packs)")
        #expect(logical > 4 << 20, "logical \(logical)")
        let text = try mirror.run("status").text
        #expect(text.contains("stored of a 3.0 MiB budget") && text.contains("of content"), "\(text)")
    }
}
