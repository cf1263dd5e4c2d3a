use std::io::Write as _;

use clap::Parser as _;
use sip_xdp::{
    attach::{AttachMode, EgressAttach},
    cli::{AllowCommand, BanCommand, Cli, Command, EgressAttachArg, IntlCommand, XdpModeArg},
    commands,
    daemon::{self, RunOptions},
    error::{exit_status, HANDED_OVER},
    pin::PinDir,
};

fn main() {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let pins = PinDir::new(&cli.pin_dir);
    let result = match cli.command {
        Command::Run(args) => {
            let opts = RunOptions {
                config: args.config,
                interfaces: args.interfaces,
                pin_dir: pins,
                mode: match args.xdp_mode {
                    XdpModeArg::Auto => AttachMode::Auto,
                    XdpModeArg::Native => AttachMode::Native,
                    XdpModeArg::Skb => AttachMode::Skb,
                },
                egress: match args.egress_attach {
                    EgressAttachArg::Auto => EgressAttach::Auto,
                    EgressAttachArg::Tcx => EgressAttach::Tcx,
                    EgressAttachArg::Clsact => EgressAttach::Clsact,
                },
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(daemon::run(opts)))
                .map(|stopped| {
                    if stopped == daemon::Stopped::HandedOver {
                        std::process::exit(HANDED_OVER);
                    }
                    String::new()
                })
        }
        Command::CheckConfig { file } => commands::check_config(&file),
        Command::Allow(AllowCommand::Add { cidr }) => commands::allow_add(&pins, &cidr),
        Command::Allow(AllowCommand::Del { cidr }) => commands::allow_del(&pins, &cidr),
        Command::Allow(AllowCommand::List { json }) => commands::allow_list(&pins, json),
        Command::Ban(BanCommand::Add { target, duration }) => commands::ban_add(&pins, &target, duration),
        Command::Ban(BanCommand::Del { target }) => commands::ban_del(&pins, &target),
        Command::Ban(BanCommand::List { json }) => commands::ban_list(&pins, json),
        Command::Intl(IntlCommand::List { json }) => commands::intl_list(&pins, json),
        Command::Intl(IntlCommand::Unblock { source }) => commands::intl_unblock(&pins, &source),
        Command::Stats { json } => commands::stats(&pins, json),
        Command::Detach => commands::detach(&pins),
        Command::Sources { top, json } => commands::sources(&pins, top, json),
        Command::Doctor { config, interfaces, try_attach } => {
            commands::doctor(&cli.pin_dir, config.as_deref(), interfaces, try_attach)
        }
    };
    match result {
        Ok(out) => {
            let _ = std::io::stdout().write_all(out.as_bytes());
        }
        Err(err) => {
            eprintln!("sip-xdp: error: {err:#}");
            std::process::exit(exit_status(&err));
        }
    }
}
