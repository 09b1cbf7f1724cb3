"""eft.train"""
