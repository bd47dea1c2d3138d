import AlexandriaGateway
import AlexandriaHome
import AlexandriaStore
import Foundation
import Testing

@Suite struct ConfigTests {
    @Test func defaultConfigParses() throws {
        let config = try HomeConfig(toml: TOMLSubset(parsing: HomeConfig.defaultText))
        #expect(config.storeBudget == nil && config.durability == .os && config.lockTimeoutSeconds == 30)
    }

    @Test func valuesAndSizes() throws {
        let toml = try TOMLSubset(parsing: "[store]\nbudget = \"1.5 GiB\" # comment\ndurability = \"fsync\"\n")
        let config = try HomeConfig(toml: toml)
        #expect(config.storeBudget == 1_610_612_736)
        #expect(config.durability == .fsync)
        #expect(ByteSize.parse("2TB") == 2_000_000_000_000)
        #expect(ByteSize.parse("12 parsecs") == nil)
        let arrays = try TOMLSubset(parsing: "peers = [\"a:1\", \"b:2\",]\nn = 1_000\nflag = true")
        #expect(arrays["", "peers"] == .array([.string("a:1"), .string("b:2")]))
        #expect(arrays["", "n"] == .integer(1000))
        #expect(arrays["", "flag"] == .boolean(true))
    }

    @Test func gatewayTableAndAliases() throws {
        let id = String(repeating: "ab", count: 32)
        let text = "[gateway]\nlisten = \"127.0.0.1:8080\"\nmax_connections = 10\n[gateway.aliases]\nQwen = \"\(id)\"\n"
        let config = try HomeConfig(toml: TOMLSubset(parsing: text))
        #expect(config.gatewayListen == "127.0.0.1:8080")
        #expect(config.gatewayMaxConnections == 10)
        #expect(config.gatewayAliases == ["Qwen": id])
        #expect(try HomeConfig(toml: TOMLSubset(parsing: HomeConfig.defaultText)).gatewayListen == nil)
        // The mapping to the gateway's settings: what the table names, and the gateway's own defaults for the rest.
        let settings = try config.gatewaySettings(host: "127.0.0.1", port: 8080)
        #expect(settings.host == "127.0.0.1" && settings.port == 8080 && settings.maxConnections == 10)
        #expect(settings.headerTimeoutSeconds == GatewaySettings().headerTimeoutSeconds)
        #expect(settings.aliases["Qwen"]?.description == id)
    }

    @Test(arguments: [
        "[gateway]\nport = 1", "[gateway.aliases]\nacme = \"abc\"", "[gateway.aliases]\nacme = 5", "[gateway.other]",
        "[gateway.]", "[.gateway]", "[gateway]\nmax_connections = 0",
    ])
    func badGatewaySettingsAreErrors(text: String) {
        #expect(throws: (any Error).self) { try HomeConfig(toml: TOMLSubset(parsing: text)) }
    }

    @Test(arguments: [
        "x = ", "x = 1\nx = 2", "[a]\n[a]", "x = 'single'", "x = \"unterminated", "x = 1.5", "x = {a = 1}",
        "a.b = 1", "x = 1 2", "x = [[[[[1]]]]]", "x = \"bad \\q escape\"", "x = 1__0", "[store]\nbudget = -5",
        "[node]\ninbound = 1.5", "[node]\npeers = [1, 2]", "[node]\nlisten = 1979-05-27", "[node.deeper]\nx = 1",
        "[node]\nx = {a = 1}", "[gossip]\nfanout = \"3\"",
    ])
    func malformedConfigsAreErrors(text: String) {
        #expect(throws: (any Error).self) { try HomeConfig(toml: TOMLSubset(parsing: text)) }
    }

    /// What the hand-written subset refused and TOML allows: arrays over several lines (with comments and a
    /// trailing comma), floats, literal strings.
    @Test func multiLineArraysFloatsAndLiteralStrings() throws {
        let text = """
            [node]
            peers = [
                "10.0.0.5:7420",   # the first
                '10.0.0.6:7420',
            ]

            [gossip]
            anti_entropy = 0.5
            peer_exchange = 2.5e1

            [mirror]
            interval = 1.5
            """
        let toml = try TOMLDocument(parsing: text)
        #expect(toml["gossip", "anti_entropy"] == .float(0.5))
        let config = try HomeConfig(toml: toml)
        #expect(config.peers == ["10.0.0.5:7420", "10.0.0.6:7420"])
        #expect(config.antiEntropySeconds == 0.5)
        #expect(config.peerExchangeSeconds == 25)
        #expect(config.mirrorIntervalSeconds == 1.5)
    }

    /// An unknown key or a wrong type names the table, the key and its line; a syntax error names its line.
    @Test func errorsNameTheKeyAndTheLine() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/alexandria-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let home = Home(path: directory)
        func error(_ text: String) -> String {
            _ = FileManager.default.createFile(atPath: home.configPath, contents: Data(text.utf8))
            do {
                _ = try home.config()
                return ""
            } catch {
                return "\(error)"
            }
        }
        let unknown = error("[node]\noutbound = 8\n\n[gossip]\nfanout = 3\nfanuot = 4\n")
        #expect(unknown.contains("line 6") && unknown.contains("[gossip] fanuot: unknown setting"), "\(unknown)")
        let type = error("[store]\nlock_timeout = 30\n[node]\ninbound = \"many\"\n")
        #expect(type.contains("line 4") && type.contains("[node] inbound"), "\(type)")
        let table = error("[node]\n\n[nodes]\nx = 1\n")
        #expect(table.contains("line 3") && table.contains("[nodes]: unknown table"), "\(table)")
        let syntax = error("[node]\npeers = [\n  \"a:1\",\n  \"b:2\"\n  \"c:3\"\n]\n")
        #expect(syntax.contains("line 5") || syntax.contains("line 4"), "\(syntax)")
        #expect(error("[node]\npeers = [\n  \"a:1\",\n]\n").isEmpty)
    }

    /// `[store] pack_target`: a size from 1 MiB to 16 GiB, into the store's options; 1 GiB when left out.
    @Test func packSize() throws {
        let config = try HomeConfig(toml: TOMLDocument(parsing: "[store]\npack_target = \"8 MiB\"\n"))
        #expect(config.storeOptions.packTargetBytes == 8 << 20)
        #expect(try HomeConfig(toml: TOMLDocument(parsing: "")).storeOptions.packTargetBytes == 1 << 30)
        for bad in ["\"512 KiB\"", "\"17 GiB\"", "\"big\"", "8"] {
            #expect(throws: (any Error).self) {
                try HomeConfig(toml: TOMLDocument(parsing: "[store]\npack_target = \(bad)"))
            }
        }
    }

    /// Every `toml` block the README shows is a valid `config.toml` (its `<64 hex>` witness keys filled in with the
    /// public keys of RFC 8032's test vectors).
    @Test func theReadmesConfigBlocksParse() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        var keys = [
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        ]
        var blocks = 0
        var rest = text[...]
        while let open = rest.range(of: "```toml\n"),
            let close = rest.range(of: "\n```", range: open.upperBound..<rest.endIndex)
        {
            var block = String(rest[open.upperBound..<close.lowerBound])
            while let hole = block.range(of: "<64 hex>"), !keys.isEmpty {
                block.replaceSubrange(hole, with: keys.removeFirst())
            }
            do { _ = try HomeConfig(toml: TOMLDocument(parsing: block)) } catch {
                Issue.record("a README config block fails: \(error)\n\(block)")
            }
            blocks += 1
            rest = rest[close.upperBound...]
        }
        #expect(blocks >= 3)
    }
}

@Suite struct TrustConfigTests {
    static let key1 = "ed25519:" + String(repeating: "42", count: 32)
    static let key2 = "ed25519:43" + String(repeating: "42", count: 31)

    @Test func trustTableParses() throws {
        let config = try HomeConfig(
            toml: TOMLSubset(parsing: "[trust]\nwitnesses = [\"\(Self.key1)\", \"\(Self.key2)\"]\nquorum = 2\n"))
        #expect(config.trust.quorum == 2 && config.trust.witnesses.count == 2)
        #expect(try HomeConfig(toml: TOMLSubset(parsing: HomeConfig.defaultText)).trust.isSet == false)
    }

    @Test(arguments: [
        "[trust]\nwitnesses = [\"\(key1)\"]\nquorum = 2",
        "[trust]\nquorum = 1",
        "[trust]\nwitnesses = [\"ed25519:0100000000000000000000000000000000000000000000000000000000000000\"]",
        "[trust]\nwitnesses = [\"\(key1)\", \"\(key1)\"]",
        "[trust]\nwitnesses = \"\(key1)\"",
        "[trust]\nwitness = []",
    ])
    func badTrustTablesAreErrors(text: String) {
        #expect(throws: HomeError.self) { try HomeConfig(toml: TOMLSubset(parsing: text)) }
    }
}
