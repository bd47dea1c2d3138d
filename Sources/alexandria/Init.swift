import AlexandriaHome
import ArgumentParser

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a home: the store, its SQLite index, a node key and a default config.")

    @OptionGroup var options: HomeOptions

    @Flag(
        help: "Only replace config.toml: save it aside as config.toml.broken-<time> and write the default one.")
    var resetConfig = false

    func run() throws {
        let home = options.resolved
        if resetConfig {
            let aside = try home.resetConfig()
            Output.line(
                "wrote the default config to \(home.configPath)"
                    + (aside.map { "; the old one is in \($0) (copy your settings back from it)" } ?? ""))
            return
        }
        let created = try home.initialize()
        let key = try home.nodeKey()
        let nodeID = "ed25519:" + key.publicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        Output.line(created ? "initialised \(home.path)" : "\(home.path) is already initialised; left as it was")
        Output.line("  store   \(home.storePath)")
        Output.line("  config  \(home.configPath)")
        Output.line("  node    \(nodeID)")
    }
}
