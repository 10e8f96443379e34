//! `tessera completions SHELL`: the shell's completion script for every subcommand and flag.

use clap::CommandFactory as _;

/// Arguments of `tessera completions`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera completions bash > ~/.local/share/bash-completion/completions/tessera\n  tessera completions zsh > \"${fpath[1]}/_tessera\"\n  tessera completions fish > ~/.config/fish/completions/tessera.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the script on stdout.
pub fn run(args: &CompletionsArgs) {
    clap_complete::generate(args.shell, &mut crate::Cli::command(), "tessera", &mut std::io::stdout());
}
