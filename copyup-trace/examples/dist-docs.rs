//! Writes the man pages and the shell completions of copyup-trace, generated from its
//! clap definition (`copyup_trace::cli::command`), into the directory given:
//! `man/copyup-trace.1`, `man/copyup-trace-check.1`, and `completions/` for bash
//! (`copyup-trace.bash`), zsh (`_copyup-trace`) and fish (`copyup-trace.fish`). Run by
//! `cargo xtask dist`, which packs them; an example, so that the shipped binary carries
//! neither generator.

use std::{fs, path::Path, process::ExitCode};

use clap_complete::Shell;

fn write(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;

    let cmd = copyup_trace::cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    fs::write(man.join("copyup-trace.1"), page)?;
    // Subcommand pages are named as man(1) looks them up: `man copyup-trace-check`.
    for sub in cmd.get_subcommands() {
        // A command's name is a &'static str (clap's `string` feature is off); this
        // program writes a handful and ends.
        let name: &'static str = format!("copyup-trace-{}", sub.get_name()).leak();
        let mut page = Vec::new();
        let sub = sub.clone().name(name).version(env!("CARGO_PKG_VERSION"));
        clap_mangen::Man::new(sub).render(&mut page)?;
        fs::write(man.join(format!("{name}.1")), page)?;
    }

    for (shell, file) in [
        (Shell::Bash, "copyup-trace.bash"),
        (Shell::Zsh, "_copyup-trace"),
        (Shell::Fish, "copyup-trace.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "copyup-trace", &mut out);
        fs::write(completions.join(file), out)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = &args[..] else {
        eprintln!("usage: dist-docs DIR");
        return ExitCode::from(2);
    };
    match write(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dist-docs: writing into {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
