//! Log setup. Nothing is logged unless asked: `CACHEPOT_ERROR_LOG` sends logs to a file (warnings
//! and up unless `CACHEPOT_LOG` says otherwise); `CACHEPOT_LOG` alone sends them to stderr. The
//! compiler's own stdout and stderr are never mixed with ours by default.

use crate::config::Config;
use std::io::Write;

/// Our log line: `[<unix time> <program>[<pid>] <level> <module>] <message>`, the same for compile
/// calls and the coordinator so one grep reads both.
pub fn format_lines(b: &mut env_logger::Builder, program: &'static str) {
    b.format(move |buf, record| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        writeln!(
            buf,
            "[{}.{:03} {program}[{}] {} {}] {}",
            now.as_secs(),
            now.subsec_millis(),
            std::process::id(),
            record.level(),
            record.target(),
            record.args()
        )
    });
}

pub fn init(cfg: &Config) {
    let filter = cfg.log.value.clone();
    let file = cfg.error_log.value.as_ref();
    if filter.is_none() && file.is_none() {
        return;
    }
    let mut b = env_logger::Builder::new();
    b.parse_filters(filter.as_deref().unwrap_or("warn"));
    format_lines(&mut b, "cachepot");
    if let Some(path) = file {
        match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => {
                b.target(env_logger::Target::Pipe(Box::new(f)));
            }
            // Cannot log to the file: say nothing on stderr (it belongs to the compiler).
            Err(_) => return,
        }
    }
    let _ = b.try_init();
}
