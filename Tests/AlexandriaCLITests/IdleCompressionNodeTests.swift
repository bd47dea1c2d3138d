import AlexandriaCore
import Foundation
import Testing

/// Issue 13 §4: a running node compresses sealed packs on its own while it has nothing to replicate, and spends no
/// more than its CPU share (`[mirror] idle_compression`) doing it, measured from the kernel's account of the process.
@Suite("Compression on idle in a running node", .serialized, .offThePool)
struct IdleCompressionNodeTests {
    /// bf16-like weights: small values around zero, as a trained layer holds (the exponent bytes repeat, the mantissa
    /// bytes are noise), so the compressor has work that pays.
    static func bf16(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8](repeating: 0, count: count & ~1)
        out.withUnsafeMutableBufferPointer { p in
            for i in stride(from: 0, to: p.count, by: 2) {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                let r = state &* 2_685_821_657_736_338_717
                // About normal (the sum of four 16-bit uniforms), standard deviation about 0.02.
                let sum = Int(r & 0xFFFF) + Int(r >> 16 & 0xFFFF) + Int(r >> 32 & 0xFFFF) + Int(r >> 48)
                let value = Float(sum - 131_070) * (0.035 / 65536)
                let bits = UInt16(truncatingIfNeeded: value.bitPattern >> 16)
                p[i] = UInt8(truncatingIfNeeded: bits)
                p[i + 1] = UInt8(truncatingIfNeeded: bits >> 8)
            }
        }
        return out
    }

    /// User plus system CPU seconds of a process so far (`/proc/<pid>/stat`, fields 14 and 15).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces) start at field 3, the state.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func packBytes(_ home: String) throws -> (count: Int, bytes: Int) {
        let dir = home + "/store/packs"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".pack") }
        let bytes = try names.reduce(0) {
            $0 + (try FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as! Int)
        }
        return (names.count, bytes)
    }

    @Test func aRunningNodeCompressesSealedPacksWithinItsCPUShare() throws {
        let cli = CLI()
        let logPath = cli.home + "-node.log"
        defer {
            cli.cleanUp()
            try? FileManager.default.removeItem(atPath: cli.home + "-data")
            unlink(logPath)
        }
        #expect(try cli.run("init").status == 0)
        // 4 MiB packs (`[store] pack_target`) so that a few MiB make several sealed ones; a mirror round every 100 ms so
        // the pacing, not the round, sets the pauses.
        let share = 0.25
        let config = try String(contentsOfFile: cli.home + "/config.toml", encoding: .utf8)
            .replacingOccurrences(of: "[store]\n", with: "[store]\npack_target = \"4 MiB\"\n")
            .replacingOccurrences(of: "[mirror]\n", with: "[mirror]\ninterval = \"100ms\"\n")
            .replacingOccurrences(of: "idle_compression = 0.25", with: "idle_compression = \(share)")
        try config.write(toFile: cli.home + "/config.toml", atomically: true, encoding: .utf8)
        let weights = Self.bf16(20 << 20, seed: 1313)
        let path = try cli.write(weights, to: "m/model.safetensors")
        let added = try cli.run("add", path, "--json")
        #expect(added.status == 0, "\(added.stderr)")
        let address = ContentHash.of(weights).description
        let before = try Self.packBytes(cli.home)
        // Every pack but the open one is sealed.
        let sealed = before.count - 1
        try #require(sealed >= 3, "\(before.count) packs")

        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        (process.executableURL, process.arguments) = cli.command(
            ["node", "run", "--home", cli.home, "--listen", "127.0.0.1:\(freeLoopbackPort())", "--log-level", "info"])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        let pid = process.processIdentifier
        // From the first pack's log line to the last one: the compressions after the first, with every pause the
        // pacing put after one. Sampled every 20 ms.
        var first: (Date, Double)?
        var last: (Date, Double)?
        var log = ""
        let deadline = Date().addingTimeInterval(180)
        while Date() < deadline, process.isRunning {
            let cpu = Self.cpuSeconds(pid)
            let now = Date()
            log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let done = log.components(separatedBy: "compressed a pack on idle").count - 1
            if done >= 1, first == nil, let cpu { first = (now, cpu) }
            if done >= sealed, let cpu {
                last = (now, cpu)
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let (start, end) = (try #require(first, "\(log)"), try #require(last, "\(log)"))
        let wall = end.0.timeIntervalSince(start.0)
        let used = (end.1 - start.1) / wall
        // The kernel counts in 10 ms ticks and the window starts and ends on a poll: a little slack beside the
        // node's own idle work (gossip, status file, mirror rounds).
        #expect(used <= share + 0.1, "CPU share \(used) over \(wall) s")
        let after = try Self.packBytes(cli.home)
        #expect(after.bytes < before.bytes * 9 / 10, "\(before.bytes) -> \(after.bytes) bytes")
        process.terminate()
        process.waitUntilExit()
        // The bytes read back exactly, and the store is whole.
        let cat = try cli.run("cat", address)
        #expect(cat.status == 0 && ContentHash.of(Array(cat.stdout)).description == address)
        let verify = try cli.run("verify")
        #expect(verify.status == 0, "\(verify.text)\(verify.stderr)")
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
        print(
            String(
                format:
                    "figure: compression on idle: %d sealed 4 MiB packs of bf16-like weights, %d -> %d bytes; node CPU "
                    + "%.2f s over %.2f s from the first pack's end to the last one's = %.0f%% of one core "
                    + "(idle_compression = %.2f); load %@",
                sealed, before.bytes, after.bytes, end.1 - start.1, wall, used * 100, share, String(load)))
    }
}
