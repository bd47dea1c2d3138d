import AlexandriaCore
import Foundation
import Testing

/// Every command the README's "Using it" block shows, run as written, in order, by a shell in a folder with a
/// generated `./my-model/`, `$ALEXANDRIA_HOME` set and `alexandria` on the PATH.
///
/// As written means: the README's own words, with only its placeholders filled in (`sha256:<hex>` is the model's
/// weights file, `<publisher-id>` the id `keys generate acme` made, `REF` the release `acme/tiny@1.0`, `L` a
/// license, `"..."` a reason), `[optional parts]` left out, and `a | b` alternatives run one by one. Adapted, and
/// said so here: `keys export` and `keys import` ask a passphrase on a terminal, which a test has none of, so they
/// get `--passphrase-file`; `keys import` runs in a second home ("on another machine"). Skipped: `node run` (a
/// daemon that serves the network; the node tests run it). `audit REF --min-witnesses 3` must exit 8 (no node
/// witnessed the release), as the README says.
@Suite("README commands", .serialized, .offThePool)
struct ReadmeTests {
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("README.md")

    /// The `alexandria …` lines of the "Using it" block, comments cut off.
    static func commands() throws -> [String] {
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let section = text.range(of: "## Using it"),
            let open = text.range(of: "```bash\n", range: section.upperBound..<text.endIndex),
            let close = text.range(of: "\n```", range: open.upperBound..<text.endIndex)
        else { return [] }
        var out: [String] = []
        for line in text[open.upperBound..<close.lowerBound].split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("alexandria ") else { continue }
            let command = trimmed.range(of: "  #").map { String(trimmed[..<$0.lowerBound]) } ?? trimmed
            out.append(command.trimmingCharacters(in: .whitespaces))
        }
        return out
    }

    /// `a [--x Y] | b` → ["a", "b"] with optional parts removed; alternatives share the leading "alexandria".
    static func expand(_ command: String) -> [String] {
        var text = ""
        var depth = 0
        for c in command {
            if c == "[" { depth += 1 } else if c == "]" { depth -= 1 } else if depth == 0 { text.append(c) }
        }
        // Alternatives: "alexandria ls | verify | gc" (a pipe into another alexandria subcommand, not a shell pipe).
        let parts = text.components(separatedBy: " | ")
        return parts.enumerated().map { i, part in
            let p = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "  ", with: " ")
            return i == 0 || p.hasPrefix("alexandria ") ? p : "alexandria " + p
        }
    }

    @Test func everyCommandTheReadmeShowsRunsAsWritten() throws {
        let commands = try Self.commands()
        #expect(commands.count >= 15, "found \(commands.count) commands in the README")
        let work = FileManager.default.temporaryDirectory.path + "/alexandria-readme-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        for dir in ["bin", "my-model", "other"] {
            try FileManager.default.createDirectory(atPath: work + "/" + dir, withIntermediateDirectories: true)
        }
        try FileManager.default.createSymbolicLink(atPath: work + "/bin/alexandria", withDestinationPath: CLI.binary)
        let weights = randomBytes(400_000, seed: 12)
        try Data(weights).write(to: URL(fileURLWithPath: work + "/my-model/model.safetensors"))
        try Data("{\"model_type\": \"tiny\"}".utf8).write(to: URL(fileURLWithPath: work + "/my-model/config.json"))
        try Data("correct horse\n".utf8).write(to: URL(fileURLWithPath: work + "/pass"))
        var env = ProcessInfo.processInfo.environment
        env["ALEXANDRIA_HOME"] = work + "/home"
        env["PATH"] = work + "/bin:" + (env["PATH"] ?? "/usr/bin:/bin")

        func shell(_ command: String, home: String? = nil) -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", command]
            process.currentDirectoryURL = URL(fileURLWithPath: work)
            var e = env
            if let home { e["ALEXANDRIA_HOME"] = home }
            process.environment = e
            let out = Pipe()
            process.standardOutput = out
            process.standardError = out
            process.standardInput = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return (-1, "cannot start") }
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }

        let address = ContentHash.of(weights).description
        var publisher = ""
        var ran = 0
        for written in commands {
            for var command in Self.expand(written) {
                if command.hasPrefix("alexandria node run") { continue }  // a network daemon: see above
                if command.hasPrefix("alexandria keys export") || command.hasPrefix("alexandria keys import") {
                    command += " --passphrase-file pass"
                }
                command = command.replacingOccurrences(of: "sha256:<hex>", with: address)
                    .replacingOccurrences(of: "<publisher-id>", with: publisher)
                    .replacingOccurrences(of: " REF", with: " acme/tiny@1.0")
                    .replacingOccurrences(of: "--license L", with: "--license apache-2.0")
                    .replacingOccurrences(of: "\"...\"", with: "\"a test\"")
                let home = command.hasPrefix("alexandria keys import") ? work + "/other" : nil
                if home != nil { _ = shell("alexandria init", home: home) }
                let (status, output) = shell(command, home: home)
                let expected: Int32 = command.contains("--min-witnesses 3") ? 8 : 0
                #expect(status == expected, "`\(command)` (README: `\(written)`) exited \(status):\n\(output)")
                ran += 1
                if command.hasPrefix("alexandria keys generate acme") && publisher.isEmpty {
                    let (_, list) = shell("alexandria keys list --json")
                    let keys = (try? JSONSerialization.jsonObject(with: Data(list.utf8))) as? [[String: Any]]
                    publisher = keys?.first { $0["name"] as? String == "acme" }?["id"] as? String ?? ""
                }
            }
        }
        #expect(ran >= 20)
    }
}
