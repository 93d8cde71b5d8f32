//! Importing historical records with their own timestamps (being written).
