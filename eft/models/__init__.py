"""eft.models"""
