import AlexandriaCore
import Foundation
import Testing

/// The progress line as a user sees it: a real fetch from a real node, run on a pseudo-terminal by util-linux
/// `script` at several widths, with what the terminal received read back.
@Suite("Progress on a terminal", .serialized, .offThePool)
struct ProgressTests {
    /// Each redraw of the line: the text between a carriage return and the erase-to-end-of-line that ends it.
    static func draws(_ output: String) -> [String] {
        output.components(separatedBy: "\r").compactMap { part in
            guard let end = part.range(of: "\u{1B}[K") else { return nil }
            return String(part[..<end.lowerBound])
        }.filter { !$0.isEmpty }
    }

    /// A rate such as `15.2 MiB/s` in bytes per second.
    static func rates(_ line: String) -> [Double] {
        let units: [String: Double] = [
            "B": 1, "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824, "TiB": 1_099_511_627_776,
        ]
        let words = line.split(separator: " ").map(String.init)
        var out: [Double] = []
        for (i, w) in words.enumerated() where w.hasSuffix("/s") && i > 0 {
            let unit = String(w.dropLast(2))
            if let scale = units[unit], let value = Double(words[i - 1]) { out.append(value * scale) }
        }
        return out
    }

    @Test(arguments: [50, 80, 120])
    func aFileFetchDrawsOneLineThatFitsWithABytesRate(columns: Int) throws {
        // 8 MiB served at 5 MB/s: about 1.7 s of progress, so a dozen redraws.
        let urandom = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        let data = [UInt8](urandom.readData(ofLength: 8 << 20))
        try urandom.close()
        let address = ContentHash.of(data).description
        let server = CLI()
        let client = CLI()
        _ = try server.run("init")
        _ = try client.run("init")
        #expect(try server.run("add", try server.write(data, to: "weights.bin")).status == 0)
        let node = try NodeProcess(cli: server, extra: ["--upload-rate", "5MB"])
        defer {
            node.stop()
            server.cleanUp()
            client.cleanUp()
            try? FileManager.default.removeItem(atPath: client.home + "-out.bin")
        }
        let command = [
            CLI.binary, "fetch", address, "-o", client.home + "-out.bin", "--peer", node.address, "--home", client.home,
        ].map { "'" + $0 + "'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        // -q: no banner; -e: its exit status is the command's; the typescript file is not needed.
        process.arguments = ["-q", "-e", "-c", "stty cols \(columns) rows 24; exec \(command)", "/dev/null"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let captured = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(captured)")
        #expect(FileManager.default.contents(atPath: client.home + "-out.bin") == Data(data))

        let lines = Self.draws(captured)
        #expect(lines.count >= 3, "too few redraws: \(captured.debugDescription)")
        // Every redraw fits the terminal, short of the last column: nothing wraps.
        for line in lines { #expect(line.count <= columns - 1, "\(line.count) > \(columns - 1): \(line)") }
        // The redraws rewrite one line: no newline before the final report.
        let beforeReport = captured.components(separatedBy: "wrote ").first ?? captured
        #expect(!beforeReport.contains("\n"), "a new line during progress: \(beforeReport.debugDescription)")
        // The label is the hash's start, cut from the right or the middle, never from the left.
        let hashStart = String(address.dropFirst("sha256:".count).prefix(6))
        for line in lines where line.contains("[") { #expect(line.hasPrefix(hashStart), "\(line)") }
        // The rate is in bytes per second: about the 5 MB/s the node serves at (chunks per second would be ~20).
        let seen = lines.flatMap(Self.rates)
        #expect(seen.contains { $0 >= 1_048_576 && $0 <= 1_073_741_824 }, "rates: \(seen) in \(lines)")
        // No ETA in hours for a transfer of seconds; `--` until there is a rate to go by.
        for line in lines where line.contains("ETA ") {
            let eta = line.components(separatedBy: "ETA ").last ?? ""
            #expect(eta == "--" || !eta.contains("h"), "\(line)")
        }
    }
}
