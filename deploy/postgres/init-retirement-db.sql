CREATE DATABASE retirement;
