import AlexandriaHome
import AlexandriaStore
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
    ])
    func malformedConfigsAreErrors(text: String) {
        #expect(throws: (any Error).self) { try HomeConfig(toml: TOMLSubset(parsing: text)) }
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
