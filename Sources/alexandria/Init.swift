import AlexandriaHome
import ArgumentParser

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a home: the store, its SQLite index, a node key and a default config.")

    @OptionGroup var options: HomeOptions

    func run() throws {
        let home = options.resolved
        let created = try home.initialize()
        let key = try home.nodeKey()
        let nodeID = "ed25519:" + key.publicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        Output.line(created ? "initialised \(home.path)" : "\(home.path) is already initialised; left as it was")
        Output.line("  store   \(home.storePath)")
        Output.line("  config  \(home.configPath)")
        Output.line("  node    \(nodeID)")
    }
}
