//! `keta serve` settings: defaults, then a TOML file, then KETA_* variables and flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(clap::Args, Debug)]
pub struct ServeOptions {
    /// A TOML file with `bind` and `database_url`.
    #[arg(long, env = "KETA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "KETA_BIND")]
    bind: Option<SocketAddr>,
    /// sqlite://PATH or postgres://USER@HOST/DB (default sqlite://keta-data/keta.db).
    #[arg(long, env = "KETA_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    database_url: Option<String>,
}

#[derive(Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
}

impl ServeOptions {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config {} is not valid (keys: bind, database_url)", p.display()))?
            }
            None => FileConfig::default(),
        };
        let database_url =
            self.database_url.or(file.database_url).unwrap_or_else(|| "sqlite://keta-data/keta.db".into());
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("database_url '{database_url}' must start with sqlite:// or postgres://");
        }
        Ok(Config {
            bind: self.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid")),
            database_url,
        })
    }
}
