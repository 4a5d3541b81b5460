//! The table of modules: one line each. A test checks it (unique names, each module's
//! metricsets unique and its defaults among them).

use crate::Module;

pub mod apache;
pub mod beat;
pub mod golang;
pub mod haproxy;
pub mod kafka;
pub mod memcached;
pub mod mysql;
pub mod nats;
pub mod nginx;
pub mod postgresql;
pub mod prometheus;
pub mod rabbitmq;
pub mod redis;
pub mod schema;
pub mod system;
pub mod zookeeper;

/// Every module skiff has.
pub static MODULES: &[&dyn Module] = &[
    &golang::Golang,
    &apache::Apache,
    &prometheus::Prometheus,
    &rabbitmq::RabbitMq,
    &redis::Redis,
    &mysql::Mysql,
    &postgresql::Postgresql,
    &nats::Nats,
    &nginx::Nginx,
    &memcached::Memcached,
    &zookeeper::ZooKeeper,
    &haproxy::Haproxy,
    &kafka::Kafka,
    &system::System,
    &beat::Agent("beat"),
    &beat::Agent("skiff"),
];

/// The module named `name`.
pub fn find(name: &str) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        let mut names: Vec<&str> = MODULES.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate module");
        for m in MODULES {
            let mut sets = m.metricsets().to_vec();
            sets.sort_unstable();
            let n = sets.len();
            sets.dedup();
            assert_eq!(n, sets.len(), "duplicate metricset in {}", m.name());
            for d in m.default_metricsets() {
                assert!(m.metricsets().contains(d), "{}: default {d}", m.name());
            }
        }
    }
}
