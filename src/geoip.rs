//! Where a visitor is, from their IP address and offline databases in MaxMind's `.mmdb`
//! format (`geoip_paths`). Two record layouts are understood: MaxMind GeoIP2/GeoLite2
//! (`country.iso_code`, `subdivisions[].names`, `city.names`) and the flat one of the
//! ip-location-db packages (`country_code`, `state1`, `city`), e.g. DB-IP Lite City, whose
//! IPv4 and IPv6 halves are separate files. Without a database every location is unknown
//! and nothing fails.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use anyhow::Context as _;
use maxminddb::{Mmap, Reader};
use serde::Deserialize;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2, e.g. `CN`.
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}

impl Location {
    pub fn is_known(&self) -> bool {
        self.country.is_some() || self.region.is_some() || self.city.is_some()
    }
}

/// The loaded databases (tried in order until one knows the address).
#[derive(Default)]
pub struct GeoIp {
    readers: Vec<Reader<Mmap>>,
}

impl GeoIp {
    pub fn open(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let readers = paths
            .iter()
            .map(|p| {
                // SAFETY: the file is mapped, not copied (a city database is 60–130 MB and
                // only the pages used become resident). It must not be modified in place
                // while kefu runs: updates replace it by renaming a new file over it, which
                // leaves the mapped one intact (docs/deployment notes in the README).
                unsafe { Reader::open_mmap(p) }
                    .with_context(|| format!("opening the GeoIP database {}", p.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { readers })
    }

    pub fn lookup(&self, ip: IpAddr) -> Location {
        for reader in &self.readers {
            let Ok(result) = reader.lookup(ip) else { continue };
            let Ok(Some(record)) = result.decode::<Record>() else { continue };
            let location = record.location();
            if location.is_known() {
                return location;
            }
        }
        Location::default()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Record {
    // GeoIP2 / GeoLite2
    country: Option<GeoName>,
    subdivisions: Vec<GeoName>,
    // both layouts: an object of names (GeoIP2) or a plain string (ip-location-db)
    city: Option<NameOrText>,
    // ip-location-db
    country_code: Option<String>,
    state1: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GeoName {
    iso_code: Option<String>,
    names: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NameOrText {
    Text(String),
    Names(GeoName),
}

impl GeoName {
    fn name(&self) -> Option<String> {
        self.names.get("en").or_else(|| self.names.get("zh-CN")).cloned()
    }
}

impl Record {
    fn location(self) -> Location {
        let clean = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        Location {
            country: clean(self.country_code.or_else(|| self.country.and_then(|c| c.iso_code))),
            region: clean(
                self.state1.or_else(|| self.subdivisions.first().and_then(GeoName::name)),
            ),
            city: clean(self.city.and_then(|c| match c {
                NameOrText::Text(t) => Some(t),
                NameOrText::Names(n) => n.name(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_databases_everything_is_unknown() {
        let geo = GeoIp::open(&[]).unwrap();
        assert_eq!(geo.lookup("8.8.8.8".parse().unwrap()), Location::default());
        assert!(GeoIp::open(&[PathBuf::from("/nonexistent.mmdb")]).is_err());
    }
}
