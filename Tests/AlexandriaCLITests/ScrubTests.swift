import AlexandriaCore
import Foundation
import Testing

/// Issue 13 §4: a node's scheduled scrub finds a flipped byte in a pack, fetches the chunk again from a peer by
/// itself, and logs the repair.
@Suite("Scheduled scrub", .serialized)
struct ScrubTests {
    /// Flips one byte in the middle of the largest pack of `home` (inside a chunk's bytes: random data is stored raw).
    static func flipAByte(home: String) throws {
        let packs = home + "/store/packs"
        let names = try FileManager.default.contentsOfDirectory(atPath: packs).filter { $0.hasSuffix(".pack") }
        let sized = try names.map { name -> (String, Int) in
            let size = try FileManager.default.attributesOfItem(atPath: packs + "/" + name)[.size] as! Int
            return (packs + "/" + name, size)
        }
        let (path, size) = try #require(sized.max { $0.1 < $1.1 })
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(size / 2))
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: UInt64(size / 2))
        try handle.write(contentsOf: [byte ^ 0x01])
        try handle.close()
    }

    @Test func aScrubRepairsAFlippedByteFromAPeerAndLogsIt() throws {
        let origin = CLI()
        let mirror = CLI()
        defer {
            origin.cleanUp()
            mirror.cleanUp()
        }
        _ = try origin.run("init")
        _ = try mirror.run("init")
        _ = try origin.run("keys", "generate", "acme")
        let weights = randomBytes(2 << 20, seed: 4242)
        let dir = (try origin.write(weights, to: "m/model.safetensors") as NSString).deletingLastPathComponent
        let published = try origin.run("publish", dir, "--name", "tiny", "--version", "1.0", "--json")
        #expect(published.status == 0, "\(published.stderr)")
        let release =
            (try JSONSerialization.jsonObject(with: published.stdout) as! [String: Any])["release"] as! String
        let source = try NodeProcess(cli: origin)
        defer { source.stop() }

        // The mirror replicates the release (into its packs).
        var replicated = false
        do {
            let node = try NodeProcess(cli: mirror, extra: ["--peer", source.address])
            defer { node.stop() }
            let deadline = Date().addingTimeInterval(40)
            while Date() < deadline {
                if try mirror.run("audit", release).status == 0 {
                    replicated = true
                    break
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        try #require(replicated, "the mirror did not replicate \(release)")

        // A byte flips on the mirror's disk while it is stopped; its scrub is due (last one a day ago, every hour).
        try Self.flipAByte(home: mirror.home)
        let config = try String(contentsOfFile: mirror.home + "/config.toml", encoding: .utf8)
        try config.replacingOccurrences(of: "scrub_interval = \"7d\"", with: "scrub_interval = \"1h\"")
            .write(toFile: mirror.home + "/config.toml", atomically: true, encoding: .utf8)
        try "\(Date().timeIntervalSince1970 - 86400)\n".write(
            toFile: mirror.home + "/scrub-state", atomically: true, encoding: .utf8)

        let logPath = mirror.home + "-node.log"
        defer { unlink(logPath) }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        (process.executableURL, process.arguments) = mirror.command(
            [
                "node", "run", "--home", mirror.home, "--listen", "127.0.0.1:\(Int.random(in: 20_000...60_000))",
                "--peer", source.address,
            ])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        var log = ""
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if log.contains("scrub finished") { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        let port = source.address.split(separator: ":").last!
        #expect(log.contains("scrub found damaged chunk sha256:"), "\(log)")
        #expect(
            log.split(separator: "\n").contains {
                $0.contains("repaired chunk sha256:") && $0.contains("from peer 127.0.0.1:\(port)")
            }, "\(log)")
        #expect(log.contains("repaired=1") || log.contains("repaired\":\"1") || log.contains("repaired: 1"), "\(log)")
        // The store is whole again, and the next scrub is a day away from now, not due at once.
        process.terminate()
        process.waitUntilExit()
        let verify = try mirror.run("verify")
        #expect(verify.status == 0, "\(verify.text)\(verify.stderr)")
        let last =
            Double(
                try String(contentsOfFile: mirror.home + "/scrub-state", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(Date().timeIntervalSince1970 - last < 60)
    }
}
