import AlexandriaCatalog
import AlexandriaHome
import AlexandriaPeer
import ArgumentParser
import Logging
import ServiceLifecycle

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run this home as a node.", subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The mirror daemon: serves what the store holds by hash, to authenticated peers.",
            discussion: """
                SIGTERM or SIGINT stops it gracefully: no new connections, in-flight work finished or cancelled, the \
                store closed. Flags override [node] in config.toml. `alexandria fetch` and `publish` on the same home \
                write to the same store, so what they bring in is served from then on.
                """)
        @OptionGroup var options: HomeOptions
        @Option(help: "HOST:PORT to listen on (default from config, 127.0.0.1:7420).") var listen: String?
        @Option(help: "A peer HOST:PORT (repeatable; adds to config).") var peer: [String] = []
        @Option(help: "trace, debug, info, notice, warning, error.") var logLevel: String = "info"
        @Option(help: "Upload limit for all peers together, e.g. 50MiB (per second).") var uploadRate: String?

        func run() async throws {
            let home = options.resolved
            let config = try home.config()
            let address = listen ?? config.listen
            guard let parsed = PeerAddress(parsing: address) else {
                throw CommandFailure(message: "--listen takes HOST:PORT, not \(address)", exitCode: 2)
            }
            let level = Logger.Level(rawValue: logLevel) ?? .info
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "alexandria.node")
            let server = PeerServer(
                store: try home.openStore(), catalog: try Catalog(path: home.catalogPath),
                identity: NodeIdentity(key: try home.nodeKey()), host: parsed.host, port: parsed.port, logger: logger)
            if let uploadRate {
                guard let bytes = ByteSize.parse(uploadRate), bytes > 0 else {
                    throw CommandFailure(message: "--upload-rate takes a size per second such as 50MiB", exitCode: 2)
                }
                server.uploadBytesPerSecond = Double(bytes)
            }
            let group = ServiceGroup(
                configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}
